"""Loopback TCP ports where connecting is refused, for as long as a test needs one.

A port that was bound and released again is free for anyone: in a parallel run,
another test's listener (bound to port 0) can be given the same number before the
"refused" client connects.  The client then talks to that server instead of being
refused, and the server gets a stray connection (an FTP client in active mode once
took one as its data connection and waited for bytes that never came).  Kept bound
but never listening, the port refuses every connection (the kernel answers the SYN
with a reset) and no other socket can be given it until the block ends.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

__all__ = ["refused_port"]


@contextlib.contextmanager
def refused_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A TCP port on ``host`` that refuses connections until the block ends."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        yield int(sock.getsockname()[1])
