"""Rate-limited reporting of accept() failures (EMFILE and friends).

When the process runs out of file descriptors, asyncio's accept loop survives, but
it reports every failed ``accept()`` to the loop's exception handler, with a
traceback, up to ``backlog`` times per retry: hundreds of log records a second.
If stderr is a pipe nobody drains, that flood can even block the whole loop.
Servers register their listening sockets here; a small filter in front of the
loop's exception handler counts those failures on the server
(``stats.accept_errors``) and logs at most one line per ``INTERVAL`` seconds per
server.  Everything else goes to the previous handler untouched.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .stream import StreamServer

logger = logging.getLogger("asyncnet.server")

RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
INTERVAL = 10.0
"""Seconds between two log lines about accept failures of one server."""

_filters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _AcceptErrorFilter] = (
    weakref.WeakKeyDictionary()
)


class _AcceptErrorFilter:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.previous = loop.get_exception_handler()
        self.servers: dict[int, StreamServer] = {}
        loop.set_exception_handler(self)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        sock = context.get("socket")
        if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS and sock is not None:
            server = self.servers.get(sock.fileno())
            if server is not None:
                _report(server, exc, loop.time())
                return
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)


def _report(server: StreamServer, exc: OSError, now: float) -> None:
    server.stats.accept_errors += 1
    if now - server._accept_error_logged_at >= INTERVAL:
        server._accept_error_logged_at = now
        logger.error(
            "%s: accept() failed: %s (%d times so far; asyncio retries, next report in %g s)",
            server.name,
            exc.strerror or exc,
            server.stats.accept_errors,
            INTERVAL,
        )


def watch(loop: asyncio.AbstractEventLoop, server: StreamServer, filenos: list[int]) -> None:
    """Route accept failures on ``filenos`` to ``server``'s counter and rate-limited log."""
    current = loop.get_exception_handler()
    filt = _filters.get(loop)
    if filt is None or current is not filt:
        filt = _filters[loop] = _AcceptErrorFilter(loop)
    for fileno in filenos:
        filt.servers[fileno] = server


def unwatch(loop: asyncio.AbstractEventLoop, filenos: list[int]) -> None:
    """Forget listening sockets that are being closed."""
    filt = _filters.get(loop)
    if filt is not None:
        for fileno in filenos:
            filt.servers.pop(fileno, None)
