"""The benchmark's delaying proxy (benchmarks.latency): the delay it adds, and nothing else.

Real sockets on 127.0.0.1 port 0 throughout: an echo server, a server that speaks
first, aioftp's server behind the FTP-aware proxy with ftplib and asyncnet's client.
"""

from __future__ import annotations

import asyncio
import ftplib
import hashlib
import io
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from benchmarks.latency import DelayProxy

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.mark.timeout(20)
async def test_ping_pong_at_20_ms_costs_one_rtt_per_round_trip() -> None:
    """Each round trip through a 20 ms proxy takes 20 ms or more, and well under 60."""
    server = await asyncio.start_server(_echo, HOST, 0)
    async with server, DelayProxy((HOST, server.sockets[0].getsockname()[1]), 0.020) as proxy:
        reader, writer = await asyncio.open_connection(HOST, proxy.port)
        times = []
        for n in range(15):
            started = time.perf_counter()
            writer.write(b"%d\n" % n)
            assert await reader.readline() == b"%d\n" % n
            times.append(time.perf_counter() - started)
        writer.close()
        await writer.wait_closed()
    first, rest = times[0], sorted(times[1:])
    # The first round trip carries the handshake (the server accepts 1.5 RTT late).
    assert 0.040 <= first < 0.120, times
    assert rest[0] >= 0.020, times
    assert rest[len(rest) // 2] < 0.060, times


@pytest.mark.timeout(20)
async def test_a_server_that_speaks_first_is_heard_after_two_rtts() -> None:
    """A greeting arrives 2 RTT after connect(): SYN, SYN-ACK, ACK, then the greeting."""

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"+OK hello\r\n")
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(greet, HOST, 0)
    async with server, DelayProxy((HOST, server.sockets[0].getsockname()[1]), 0.030) as proxy:
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection(HOST, proxy.port)
        assert await reader.readline() == b"+OK hello\r\n"
        elapsed = time.perf_counter() - started
        writer.close()
        await writer.wait_closed()
    assert 0.060 <= elapsed < 0.150


@pytest.mark.timeout(20)
async def test_bulk_data_keeps_order_and_is_not_delayed_per_chunk() -> None:
    """8 MiB each way at 200 ms RTT: intact, in order, in about one delay, not one per chunk.

    The proxy reads at most 256 KiB at a time, so the 8 MiB is at least 32 chunks: a
    proxy that slept 100 ms per chunk would need 3.2 s or more.
    """
    payload = hashlib.sha256(b"seed").digest() * (8 * 1024 * 1024 // 32)
    server = await asyncio.start_server(_echo, HOST, 0)
    async with server, DelayProxy((HOST, server.sockets[0].getsockname()[1]), 0.200) as proxy:
        reader, writer = await asyncio.open_connection(HOST, proxy.port)
        started = time.perf_counter()

        async def send() -> None:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()  # the half-close goes through too: the echo server ends

        async with asyncio.TaskGroup() as group:
            group.create_task(send())
            echoed = group.create_task(reader.read())
        elapsed = time.perf_counter() - started
        writer.close()
        await writer.wait_closed()
    assert hashlib.sha256(echoed.result()).digest() == hashlib.sha256(payload).digest()
    # Handshake (300 ms) + there and back (200 ms) + copying on a shared 2-core machine.
    assert 0.5 <= elapsed < 2.5, elapsed


@pytest.mark.timeout(20)
async def test_half_close_delivers_the_whole_reply() -> None:
    """S4: request, then EOF; the server answers after EOF and the reply arrives whole."""

    async def answer_at_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.read()
        writer.write(request.upper() * 1000)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_at_eof, HOST, 0)
    async with server, DelayProxy((HOST, server.sockets[0].getsockname()[1]), 0.010) as proxy:
        reader, writer = await asyncio.open_connection(HOST, proxy.port)
        writer.write(b"abc")
        writer.write_eof()
        assert await reader.read() == b"ABC" * 1000
        writer.close()
        await writer.wait_closed()


@pytest.mark.timeout(20)
async def test_a_refused_upstream_resets_the_client_and_the_proxy_keeps_going() -> None:
    """No server behind the proxy: the client sees the connection end; the next one works."""
    gone = await asyncio.start_server(_echo, HOST, 0)
    port = gone.sockets[0].getsockname()[1]
    gone.close()
    await gone.wait_closed()
    async with DelayProxy((HOST, port), 0.010) as proxy:
        reader, writer = await asyncio.open_connection(HOST, proxy.port)
        with pytest.raises(ConnectionResetError):
            await reader.read()  # the proxy aborts its side, as a refused port would
        writer.close()
        server = await asyncio.start_server(_echo, HOST, port)
        async with server:
            reader, writer = await asyncio.open_connection(HOST, proxy.port)
            writer.write(b"again\n")
            assert await reader.readline() == b"again\n"
            writer.close()
            await writer.wait_closed()
    assert proxy.connections == 2


@pytest.fixture
async def ftp_server(tmp_path: Path) -> AsyncIterator[tuple[int, bytes]]:
    """aioftp's server over a folder holding ``f.bin`` (1 MiB); its port and the file."""
    import aioftp

    data = bytes(range(256)) * 4096
    (tmp_path / "f.bin").write_bytes(data)
    user = aioftp.User("u", "p", base_path=tmp_path, permissions=[aioftp.Permission("/")])
    server = aioftp.Server([user])
    await server.start(HOST, 0)
    yield server.server.sockets[0].getsockname()[1], data
    await server.close()


@pytest.mark.timeout(30)
async def test_ftp_data_connections_go_through_the_proxy(ftp_server: tuple[int, bytes]) -> None:
    """ftplib (PASV) and asyncnet (EPSV) through the FTP-aware proxy: rewritten, delayed."""
    from asyncnet.ftp import FTPClient

    port, data = ftp_server
    rtt = 0.020
    async with DelayProxy((HOST, port), rtt, ftp=True) as proxy:

        def blocking() -> tuple[bytes, float]:
            ftp = ftplib.FTP()
            ftp.connect(HOST, proxy.port, timeout=10)
            ftp.login("u", "p")
            got = io.BytesIO()
            started = time.perf_counter()
            ftp.retrbinary("RETR f.bin", got.write)  # TYPE I, PASV, RETR, the data, 226
            elapsed = time.perf_counter() - started
            ftp.quit()
            return got.getvalue(), elapsed

        got, elapsed = await asyncio.to_thread(blocking)
        assert got == data
        # TYPE, PASV, the data connection's handshake and RETR: 4 RTT at the very least.
        assert elapsed >= 4 * rtt, elapsed
        assert proxy.passive_replies == 1

        async with FTPClient(HOST, proxy.port, user="u", password="p") as ftp:
            got_async = io.BytesIO()
            assert await ftp.retrieve("f.bin", got_async.write) == len(data)
        assert got_async.getvalue() == data
        assert proxy.passive_replies == 2  # EPSV this time, rewritten the same way
        assert proxy.connections == 2


@pytest.mark.parametrize(
    ("line", "template", "upstream_port"),
    [
        (
            b"227 Entering Passive Mode (127,0,0,1,4,1).\r\n",
            "227 Entering Passive Mode (127,0,0,1,{hi},{lo}).\r\n",
            4 * 256 + 1,
        ),
        (
            b"229 Entering Extended Passive Mode (|||1025|)\r\n",
            "229 Entering Extended Passive Mode (|||{port}|)\r\n",
            1025,
        ),
        (b"229 Extended (!!!2000!)\r\n", "229 Extended (!!!{port}!)\r\n", 2000),
        (b"250 OK (1,2,3,4,5,6)\r\n", "250 OK (1,2,3,4,5,6)\r\n", None),
    ],
)
async def test_passive_replies_are_rewritten_to_a_listener(
    line: bytes, template: str, upstream_port: int | None
) -> None:
    """Only 227 and 229 are rewritten: to a listener of the proxy's, the rest kept."""
    proxy = DelayProxy((HOST, 1), 0.0, ftp=True)
    try:
        out = await proxy._rewrite(line)
        if upstream_port is None:
            assert out == line
            assert proxy.passive_replies == 0
            return
        (data,) = proxy._data
        assert data.upstream == (HOST, upstream_port)
        hi, lo = divmod(data.port, 256)
        assert out.decode() == template.format(port=data.port, hi=hi, lo=lo)
        assert proxy.passive_replies == 1
    finally:
        await proxy.close()


def test_cli_prints_the_ports_and_stops_when_stdin_closes() -> None:
    """python -m benchmarks.latency: one JSON line of ports, forwards, exits on EOF."""
    import socket

    with socket.create_server((HOST, 0)) as listener:
        port = listener.getsockname()[1]
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.latency",
                "--rtt",
                "5",
                "--ports",
                json.dumps({"x": port}),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            assert process.stdin is not None
            ports = json.loads(process.stdout.readline())
            assert set(ports) == {"x"}
            assert ports["x"] != port
            with socket.create_connection((HOST, ports["x"]), timeout=5) as client:
                listener.settimeout(5)
                accepted, _ = listener.accept()  # the proxy connected upstream
                with accepted:
                    client.sendall(b"ping")
                    assert accepted.recv(4) == b"ping"
            process.stdin.close()
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()


@pytest.mark.parametrize(
    ("argv", "status", "says"),
    [
        (["--help"], 0, ""),
        (["--rtt", "x", "--ports", '{"a": 1}'], 2, "--rtt wants milliseconds"),
        (["--rtt", "5", "--ports", "[1]"], 2, "--ports wants a JSON object"),
        (["--rtt", "5", "--ports", '{"a": 1}', "--ftp", "b"], 2, "names no server"),
    ],
)
def test_cli_help_and_bad_input(argv: list[str], status: int, says: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.latency", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == status, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr
