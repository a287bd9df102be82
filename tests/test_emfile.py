"""RELIABILITY.md S7: running out of file descriptors (EMFILE) in a real process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import ROOT, read_listening_line

pytestmark = pytest.mark.slow

SERVER = """
import asyncio, resource, sys
from asyncnet import run, tcp_server
from asyncnet.demos.upper import Upper
from asyncnet.runner import configure_logging

configure_logging(0)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

async def main():
    async with tcp_server(Upper, backlog=200) as server:
        print("listening on port", server.address[1], flush=True)
        done = asyncio.Event()
        asyncio.get_running_loop().add_reader(sys.stdin.fileno(), done.set)
        await done.wait()
        print("accept_errors", server.stats.accept_errors, flush=True)

run(main(), use_uvloop=sys.argv[1] == "uvloop")
"""


def fresh_exchange(port: int) -> bytes:
    """A new client's exchange, retried: uvloop resets connections it cannot accept
    until the server has noticed the closed ones and freed their descriptors."""
    for _ in range(60):  # bounded: about 3 s
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as fresh:
                fresh.settimeout(5)
                fresh.sendall(b"again\n")
                return fresh.recv(100)
        except ConnectionResetError:
            time.sleep(0.05)  # back off before retrying: not a readiness wait
    raise AssertionError("the server never accepted a new connection")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_emfile_is_survived_counted_and_logged_rate_limited(loop: str, tmp_path: Path) -> None:
    """S7: the process survives, logs rarely, and serves again once fds are free."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    # stderr goes to a file: a pipe nobody drains would hide a log flood as a hang
    with (
        open(tmp_path / "stderr.log", "w+") as err,
        subprocess.Popen(
            [sys.executable, "-c", SERVER, loop],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        ) as proc,
    ):
        try:
            port = int(read_listening_line(proc, r"listening on port (\d+)")[1])
            clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(100)]
            for client in clients:
                client.sendall(b"ping\n")
            # the first ~57 are answered; the rest wait while accept() fails
            assert clients[0].recv(100) == b"PING\n"
            for client in clients[:60]:
                client.close()
            started = time.monotonic()
            if loop == "asyncio":  # asyncio keeps the backlog and retries accept()
                clients[-1].settimeout(5)
                assert clients[-1].recv(100) == b"PING\n"
            assert fresh_exchange(port) == b"AGAIN\n"
            assert time.monotonic() - started < 4.5  # asyncio's retry delay is 1 s
            for client in clients[60:]:
                client.close()
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.write("\n")
            proc.stdin.flush()
            summary = proc.stdout.read()
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        err.seek(0)
        log = err.read()
    if loop == "asyncio":
        assert int(summary.split()[-1]) > 0  # counted...
        assert 1 <= log.count("accept() failed") <= 2  # ...and logged once per 10 s
    assert "Traceback" not in log
