"""RELIABILITY.md S7: running out of file descriptors (EMFILE) in a real process."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from .helpers import fd_limited_upper, stop_fd_limited

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
            time.sleep(0.05)  # back off before retrying: not a readiness wait
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
