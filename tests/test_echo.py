"""The echo demo: one message, one reply, close; the client reports its ephemeral address."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys

import pytest

from asyncnet import LineClient, tcp_server
from asyncnet.demos.echo import Echo, echo_client

from .helpers import ROOT, read_all, read_listening_line, spawn


class RecordingEcho(Echo):
    """Echo that remembers which client addresses it served."""

    peers: list[tuple[str, int]] = []

    def setup(self) -> None:
        RecordingEcho.peers.append(self.peer)


async def test_one_message_one_reply_then_close() -> None:
    async with tcp_server(Echo) as server:
        async with await LineClient.connect(*server.address, timeout=5) as client:
            assert await client.request("Hello world") == "Hello world"
            assert await client.read_line() is None  # the server closed after one exchange
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"first\nsecond\n")  # only the first message is answered
        assert await read_all(reader) == b"first\n"
        writer.close()


async def test_client_reports_the_address_the_server_saw(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The getsockname() slide: the client's own end is an ephemeral port the OS chose."""
    RecordingEcho.peers = []
    async with tcp_server(RecordingEcho) as server:
        host, server_port = server.address
        assert await echo_client(host, server_port, "Hello world", timeout=5) == 0
    out = capsys.readouterr().out.splitlines()
    host, port = RecordingEcho.peers[0][:2]
    assert out == [
        f"connected from {host}:{port}",
        f"sent 'Hello world' to 127.0.0.1:{server_port}",
        "received 'Hello world'",
    ]
    assert port != server_port


async def test_invalid_utf8_gets_an_error_reply_and_the_server_keeps_serving() -> None:
    """Echo keeps the core's strict decoding: a clear error reply, then the connection closes."""
    async with tcp_server(Echo) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"caf\xe9\n")
        reply = await read_all(reader)
        writer.close()
        assert reply.startswith(b"error: invalid utf-8 in line")
        assert server.stats.protocol_errors == 1
        async with await LineClient.connect(*server.address, timeout=5) as client:
            assert await client.request("ok") == "ok"


async def test_garbage_without_newline_is_refused() -> None:
    async with tcp_server(Echo) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(bytes(range(1, 10)) * 10_000)  # 90 kB, no newline
        reply = await read_all(reader)
        writer.close()
        assert reply.startswith(b"error: line too long")


async def test_client_error_is_one_line_and_status_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    assert await echo_client("127.0.0.1", port, "anyone?", timeout=5) == 1
    err = capsys.readouterr().err
    assert re.fullmatch(rf"error: connect with 127\.0\.0\.1:{port} failed: .+\n", err)


@pytest.mark.slow
def test_echo_demo_serves_then_exits_zero_on_sigint() -> None:
    with spawn(["-m", "asyncnet.demos.echo", "--port", "0"]) as proc:
        port = int(read_listening_line(proc, r"echo: listening on tcp://127\.0\.0\.1:(\d+)")[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"from a blocking client\n")
            assert sock.makefile("rb").read() == b"from a blocking client\n"
        client = subprocess.run(
            [sys.executable, "-m", "asyncnet.demos.echo", "--port", str(port), "--client", "hi"],
            capture_output=True,
            text=True,
            timeout=20,
            cwd=ROOT,
        )
        assert client.returncode == 0, client.stderr
        lines = client.stdout.splitlines()
        assert re.fullmatch(r"connected from 127\.0\.0\.1:\d+", lines[0])
        assert lines[1:] == [f"sent 'hi' to 127.0.0.1:{port}", "received 'hi'"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
