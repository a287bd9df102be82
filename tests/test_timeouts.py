"""Timeouts: every phase of every client names the peer and the phase; the demo shows them."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from asyncnet import DatagramClient, LineClient, NoResponse, tcp_server, udp_server
from asyncnet.clients import FramedClient
from asyncnet.demos.timeouts import Deaf, Silent, Slow
from asyncnet.errors import NetworkError, OperationTimeout

from .helpers import ROOT


@pytest.fixture
def full_backlog() -> Iterator[tuple[str, int]]:
    """A listener that never accepts, its one queue slot taken: connects are never answered.

    On Linux a full accept queue drops the SYN, so the client keeps retrying: the
    connect can only end by a timeout.  Skipped where the kernel answers otherwise.
    """
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        address = listener.getsockname()
        with socket.create_connection(address, timeout=5):
            probe = socket.socket()
            probe.settimeout(0.2)
            try:
                probe.connect(address)
            except TimeoutError:
                pass  # dropped, as wanted
            else:
                pytest.skip("this kernel completes connects beyond the backlog")
            finally:
                probe.close()
            yield address


async def test_connect_timeout_names_peer_and_phase(full_backlog: tuple[str, int]) -> None:
    host, port = full_backlog
    for connect in (LineClient.connect, FramedClient.connect):
        with pytest.raises(OperationTimeout) as info:
            await connect(host, port, timeout=0.2)
        assert str(info.value) == f"timed out after 0.2 s during connect with {host}:{port}"
        assert isinstance(info.value, TimeoutError)


async def test_connect_timeout_can_differ_from_the_operation_timeout(
    full_backlog: tuple[str, int],
) -> None:
    with pytest.raises(OperationTimeout, match=r"after 0\.1 s during connect"):
        await FramedClient.connect(*full_backlog, timeout=30, connect_timeout=0.1)
    with pytest.raises(OperationTimeout, match=r"after 0\.1 s during connect"):
        await LineClient.connect(*full_backlog, timeout=30, connect_timeout=0.1)


async def test_closed_port_is_refused_at_once_with_peer_and_phase(closed_port: int) -> None:
    host, port = "127.0.0.1", closed_port
    with pytest.raises(NetworkError) as info:
        await LineClient.connect(host, port, timeout=5)
    assert str(info.value).startswith(f"connect with {host}:{port} failed: ")
    assert (info.value.peer, info.value.phase) == ((host, port), "connect")
    assert isinstance(info.value, OSError)


async def test_read_timeout_from_a_server_that_never_answers() -> None:
    async with tcp_server(Silent) as server:
        host, port = server.address
        async with await LineClient.connect(host, port, timeout=0.2) as client:
            with pytest.raises(OperationTimeout) as info:
                await client.request("hello?")
            with pytest.raises(OperationTimeout) as read_info:
                await client.read_line()
    assert str(info.value) == f"timed out after 0.2 s during request with {host}:{port}"
    assert str(read_info.value) == f"timed out after 0.2 s during read with {host}:{port}"


async def test_whole_session_deadline_with_replies_each_in_time() -> None:
    async with tcp_server(lambda: Slow(0.1)) as server:
        host, port = server.address
        async with await FramedClient.connect(host, port, terminator=b"\n", timeout=0.5) as client:
            assert await client.request(b"one") == b"one"  # within the per-request limit
            with pytest.raises(OperationTimeout) as info:
                async with client.deadline(0.25, "session"):
                    for n in range(10):
                        await client.request(b"%d" % n)
    assert str(info.value) == f"timed out after 0.25 s during session with {host}:{port}"


async def test_udp_retries_with_backoff_then_no_response() -> None:
    deaf = Deaf()
    async with udp_server(deaf) as server:
        host, port = server.address
        async with await DatagramClient.connect(
            host, port, timeout=0.05, retries=2, backoff=2
        ) as client:
            with pytest.raises(NoResponse) as info:
                await client.request(b"anybody there?")
    assert str(info.value) == (
        f"timed out after 0.05 s during request (3 attempts, no reply) with {host}:{port}"
    )
    assert len(deaf.arrivals) == 3
    first_gap = deaf.arrivals[1] - deaf.arrivals[0]
    second_gap = deaf.arrivals[2] - deaf.arrivals[1]
    # Lower bounds only (with room for scheduling jitter): the waits grow, 0.05 then 0.1 s.
    assert first_gap >= 0.03
    assert second_gap >= 0.08


@pytest.mark.slow
def test_timeouts_demo_prints_every_phase() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "asyncnet.demos.timeouts", "--timeout", "0.2"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    peer = r"127\.0\.0\.1:\d+"
    expected = [
        "connect to a closed port:",
        rf"  NetworkError: connect with {peer} failed: .+",
        "connect while the backlog is full:",
        # where the kernel does not drop SYNs beyond the backlog, the connect ends otherwise
        rf"  (OperationTimeout: timed out after 0\.2 s during connect with {peer}"
        rf"|NetworkError: connect with {peer} failed: .+|finished without an error)",
        "a server that never answers:",
        rf"  OperationTimeout: timed out after 0\.2 s during request with {peer}",
        "five slow replies, one deadline:",
        rf"  OperationTimeout: timed out after 0\.4 s during session with {peer}",
        r"UDP: 3 attempts, backoff x2:",
        r"  \(the server saw attempts at 0\.00 s, 0\.\d\d s, 0\.\d\d s\)",
        r"  NoResponse: timed out after 0\.1 s during request \(3 attempts, no reply\) "
        rf"with {peer}",
    ]
    lines = done.stdout.splitlines()
    assert len(lines) == len(expected), done.stdout
    for pattern, line in zip(expected, lines, strict=True):
        assert re.fullmatch(pattern, line), (pattern, line)
    assert done.stderr == ""


@pytest.mark.slow
async def test_timeouts_demo_phases_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    from asyncnet.demos.timeouts import phases

    assert await asyncio.wait_for(phases(0.1), 20) == 0
    out = capsys.readouterr().out
    assert out.count("  OperationTimeout: ") >= 2
    assert "  NoResponse: " in out
