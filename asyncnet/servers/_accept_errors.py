"""Rate-limited reporting of accept() failures (EMFILE and friends).

When the process runs out of file descriptors, asyncio's accept loop survives, but
it reports every failed ``accept()`` to the loop's exception handler, with a
traceback, up to ``backlog`` times per retry: hundreds of log records a second.
If stderr is a pipe nobody drains, that flood can even block the whole loop.
Servers register their listening sockets here; a small filter in front of the
loop's exception handler counts those failures on the server
(``stats.accept_errors``) and logs at most one line per ``INTERVAL`` seconds per
server.  Everything else goes to the previous handler untouched.

uvloop reports nothing at all: when ``accept()`` fails with EMFILE, libuv closes its
reserved descriptor, accepts the waiting connections and closes them at once (its
"EMFILE trick"), so the clients see a reset and the program sees no error, no
callback and no count.  What a server *can* see is the descriptor number of each
connection it does get: descriptors are handed out lowest first, so a connection
on one of the last few below ``RLIMIT_NOFILE`` means the next ones will fail.
:func:`check_headroom` counts those connections (``stats.connections_at_fd_limit``)
and logs one line per ``INTERVAL``, on both loops.  The number of connections
libuv dropped cannot be seen from Python (the kernel's listen-drop counters are
per host, not per socket).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import weakref
from typing import TYPE_CHECKING, Any

try:
    import resource
except ImportError:  # Windows: no RLIMIT_NOFILE, and no headroom check
    resource = None  # type: ignore[assignment]

from .._compat import is_accept_retry
from .._compat import tolerate_late_accepts as tolerate_late_accepts  # StreamServer calls it here
from .._ratelimit import INTERVAL

if TYPE_CHECKING:
    from ._stream import StreamServer

logger = logging.getLogger("asyncnet.server")

RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


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
        if isinstance(exc, ValueError) and _is_stale_accept_retry(context):
            logger.debug("accept retry after the server closed: %s", exc)
            return
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


def _is_stale_accept_retry(context: dict[str, Any]) -> bool:
    """asyncio's accept retry, scheduled 1 s after EMFILE, firing after the server closed.

    The selector loop then fails in ``_start_serving`` with "Invalid file descriptor:
    -1", once per accept that failed: a burst of tracebacks at shutdown for a
    server that is already gone.  (There is no public way to cancel those retries.)
    """
    return is_accept_retry(context.get("handle"))


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


def fd_threshold() -> int | None:
    """The descriptor number from which a new connection is "at the limit" (or None)."""
    if resource is None:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    # A margin: accept() fails once *every* descriptor is in use, and the program
    # needs a few of its own (log files, DNS, the loop's self-pipe) besides.
    return soft - min(64, max(4, soft // 32))


def check_headroom(server: StreamServer, transport: asyncio.BaseTransport, now: float) -> None:
    """Count (and log, rate-limited) a connection accepted on one of the last descriptors."""
    threshold = server._fd_threshold
    if threshold is None:
        return
    # Asked for its socket, a uvloop transport keeps a socket object (72 bytes per
    # connection).  So far from the limit only one connection in 64 is looked at: the
    # descriptor it got says whether the limit is near, and from then on (or once
    # the connections alone fill half of the descriptors) every one is.
    if (
        not server._fd_watch
        and server.stats.connections_total % 64
        and len(server._connections) * 2 < threshold
    ):
        return
    sock = transport.get_extra_info("socket")
    fileno = sock.fileno() if sock is not None else -1
    server._fd_watch = fileno * 2 >= threshold
    if fileno < threshold:
        return
    server.stats.connections_at_fd_limit += 1
    if server._fd_log.hit(now):
        logger.error(
            "%s: out of file descriptors (a connection got fd %d; %d connections open): "
            "new connections fail until some close, and uvloop drops them without a "
            "report (%d connections at the limit so far; raise it with ulimit -n)",
            server.name,
            fileno,
            len(server._connections),
            server.stats.connections_at_fd_limit,
        )
