"""RELIABILITY.md S7: running out of file descriptors (EMFILE) in a real process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import ROOT, fd_limited_upper, stop_fd_limited

pytestmark = pytest.mark.slow


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
            # The server process frees a descriptor only when it notices a closed
            # connection, and says nothing when it does: back off and retry, bounded.
            time.sleep(0.05)
    raise AssertionError("the server never accepted a new connection")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_emfile_is_survived_counted_and_logged_rate_limited(loop: str, tmp_path: Path) -> None:
    """S7: the process survives, logs rarely, and serves again once fds are free."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    with open(tmp_path / "stderr.log", "w+") as err:
        with fd_limited_upper(loop, err) as (proc, port):
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
            stats = stop_fd_limited(proc, timeout=10)
        err.seek(0)
        log = err.read()
    if loop == "asyncio":
        assert stats["accept_errors"] > 0  # counted...
        assert 1 <= log.count("accept() failed") <= 2  # ...and logged once per 10 s
    assert "Traceback" not in log


STALE_RETRY = """
import asyncio, logging, os, resource, socket, sys
import asyncnet.servers._accept_errors as accept_errors
from asyncnet import configure_logging, run, tcp_server
from asyncnet.demos.upper import Upper

if sys.argv[1] == "unfiltered":  # what the filter is for: asyncio's own report
    accept_errors.is_accept_retry = lambda handle: False
configure_logging(0)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

async def main():
    failed = asyncio.Event()

    class Seen(logging.Handler):
        def emit(self, record):
            if "accept() failed" in record.getMessage():
                failed.set()

    logging.getLogger("asyncnet.server").addHandler(Seen())
    server = tcp_server(Upper)
    await server.start()
    client = socket.socket()
    client.setblocking(False)
    spare = []
    try:
        while True:  # bounded by RLIMIT_NOFILE
            spare.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass  # every descriptor in use: the server's accept() fails with EMFILE
    client.connect_ex(server.address)
    async with asyncio.timeout(10):
        await failed.wait()
    for fd in spare:
        os.close(fd)
    await server.stop()  # asyncio's accept retry is still due, 1 s after the EMFILE
    # A timer started now with the retry's delay fires after the retry has run.
    await asyncio.sleep(asyncio.constants.ACCEPT_RETRY_DELAY)
    client.close()
    print("done", flush=True)

run(main(), use_uvloop=False)
"""
"""A server closed while asyncio's accept retry is pending; argv[1]: filtered or not."""


@pytest.mark.parametrize("mode", ["filtered", "unfiltered"])
def test_accept_retry_due_after_the_server_closed_is_not_reported(
    mode: str, tmp_path: Path
) -> None:
    """X7.2: after an EMFILE, asyncio retries accept() 1 s later, even if the server
    has closed meanwhile; the retry then fails on the closed socket ("Invalid file
    descriptor: -1").  The accept-error filter drops that report
    (``asyncnet._compat.is_accept_retry``); unfiltered, asyncio prints a traceback."""
    with open(tmp_path / "stderr.log", "w+") as err:
        proc = subprocess.run(
            [sys.executable, "-c", STALE_RETRY, mode],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            timeout=30,
            check=False,
        )
        err.seek(0)
        log = err.read()
    assert proc.returncode == 0, log
    assert proc.stdout == "done\n"
    assert "accept() failed" in log  # the EMFILE really happened
    if mode == "filtered":
        assert "Invalid file descriptor" not in log
        assert "Traceback" not in log
    else:  # if this fails, asyncio no longer retries on a closed socket: drop the helper
        assert "Invalid file descriptor: -1" in log
