"""Refusals and accept failures are counted, and logged rate-limited.

Each refusal or failed accept used to be one log line (1000 refusals, 1000 lines),
and running out of file descriptors on uvloop logged nothing at all.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from asyncnet import LineClient, tcp_server
from asyncnet.demos.upper import Upper

from .helpers import ROOT, fd_limited_upper, read_all, read_listening_line, stop_fd_limited

REFUSED = 60


@pytest.mark.all_loops
async def test_max_connections_refusals_log_one_line_not_one_each(caplog: Any) -> None:
    """X7.1: 60 refusals -> 60 counted, one WARNING line (per 10 s)."""
    caplog.set_level(logging.WARNING, logger="asyncnet.server")
    async with tcp_server(Upper, max_connections=1) as server:
        async with await LineClient.connect(*server.address) as first:
            assert await first.request("in") == "IN"
            for _ in range(REFUSED):
                reader, writer = await asyncio.open_connection(*server.address)
                assert await read_all(reader) == b"error: server busy, try again later\n"
                writer.close()
            assert await first.request("still") == "STILL"
        assert server.stats.connections_refused == REFUSED
    lines = [r.getMessage() for r in caplog.records if "max_connections" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "refused 1 connection(s)" in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_running_out_of_descriptors_is_counted_and_logged_on_both_loops(
    loop: str, tmp_path: Path
) -> None:
    """X7.2: EMFILE on uvloop (silent drops) still leaves a count and one line."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    clients: list[socket.socket] = []
    with open(tmp_path / "stderr.log", "w+") as err:
        try:
            with fd_limited_upper(loop, err) as (proc, port):
                for _ in range(100):
                    client = socket.create_connection(("127.0.0.1", port), timeout=5)
                    clients.append(client)
                    client.sendall(b"ping\n")
                # Read answers in order until the first client the server could not
                # take: then every connection it did take has been registered (and
                # checked).
                answered = 0
                for client in clients:
                    client.settimeout(2)
                    try:
                        if client.recv(100) != b"PING\n":
                            break  # EOF: uvloop accepted and closed it (libuv's EMFILE trick)
                    except OSError:  # a reset, or asyncio's backlog waiting: a timeout
                        break
                    answered += 1
                assert 40 <= answered < 100, answered
                stats = stop_fd_limited(proc, timeout=20)
        finally:
            for client in clients:
                client.close()
        err.seek(0)
        log = err.read()
    assert stats["at_fd_limit"] > 0, stats  # counted...
    assert log.count("out of file descriptors") == 1, log  # ...and logged once per 10 s
    assert "Traceback" not in log


BUSY = """
import asyncio, sys
from asyncnet import StreamHandler, run_servers, tcp_server

class Busy(StreamHandler):
    async def handle(self):
        await self.readline()
        print("busy", flush=True)
        # A graceful stop closes the listener, then ends every reader's input.
        assert await self.readline() == b""
        print("draining", flush=True)
        await asyncio.sleep(60)  # far beyond the test's bound: only a forced stop ends it

def ready(servers):
    print("listening on port", servers[0].address[1], flush=True)

server = tcp_server(Busy, port=0, grace=30)
sys.exit(run_servers(server, ready=ready, use_uvloop=sys.argv[1] == "uvloop"))
"""


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_second_ctrl_c_stops_at_once_instead_of_waiting_out_the_grace(loop: str) -> None:
    """X7.3: Ctrl-C starts a graceful stop (grace 30 s); a second one ends it now."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    with subprocess.Popen(
        [sys.executable, "-c", BUSY, loop],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            port = int(read_listening_line(proc, r"listening on port (\d+)")[1])
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                client.sendall(b"work\n")
                assert proc.stdout is not None
                assert proc.stdout.readline() == "busy\n"  # a handler is running
                proc.send_signal(signal.SIGINT)
                # The first signal starts the graceful stop: the handler says so.
                assert proc.stdout.readline() == "draining\n"
                with pytest.raises(ConnectionRefusedError):  # the listener is closed
                    socket.create_connection(("127.0.0.1", port), timeout=5).close()
                started = time.monotonic()
                proc.send_signal(signal.SIGINT)
                assert proc.wait(timeout=10) == 130  # the grace period is 30 s
                assert time.monotonic() - started < 10
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.stderr is not None
        err = proc.stderr.read()
    assert "second signal: stopping at once" in err
    assert "Traceback" not in err
