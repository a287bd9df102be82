"""What every stream connection shares: registering with its server, the handler's
``setup``/``finish`` bracket, counting, timeouts and logging handler failures."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Any, cast

from ...errors import format_peer
from .deadlines import Deadlines

if TYPE_CHECKING:
    from ..handlers import BaseHandler
    from ..stream import StreamServer

logger = logging.getLogger("asyncnet.server")

__all__ = ["ConnectionBase", "log_handler_error", "logger"]


def log_handler_error(handler: Any, peer: Any, exc: BaseException) -> None:
    """Log an exception raised by handler code, with its traceback."""
    logger.error(
        "%s failed for %s: %r",
        type(handler).__name__,
        format_peer(peer),
        exc,
        exc_info=(type(exc), exc, exc.__traceback__),
    )


def _shared_host(peer: Any) -> Any:
    """``peer`` with its host string interned: connections from one address (a balancer,
    a NAT, a benchmark) share one string instead of ~60 bytes each."""
    if peer.__class__ is tuple and peer and peer[0].__class__ is str:
        return (sys.intern(peer[0]), *peer[1:])
    return peer


class ConnectionBase:
    """One accepted connection: its server, handler, deadlines and registration.

    Subclasses (which also derive from an asyncio protocol class) implement
    :meth:`_start` (what happens once registered) and :meth:`_gone` (true once
    nothing more will run for this connection), and call :meth:`_maybe_unregister`
    whenever :meth:`_gone` may have become true.
    """

    # Slots: see LineConnection on the size of an idle connection.
    __slots__ = (
        "_conn_closed",
        "_deadlines",
        "_handler",
        "_last_activity",
        "_loop",
        "_partial_since",
        "_registered",
        "_server",
        "_stats",
        "_transport",
    )

    _handler: BaseHandler
    _transport: asyncio.Transport | None

    def _init_connection(self, server: StreamServer, handler: BaseHandler) -> None:
        self._server = server
        self._loop = server.loop
        self._stats = server.stats
        self._handler = handler
        self._transport = None
        self._conn_closed = False
        self._registered = False
        # The deadlines' clocks live here: the request path sets them without
        # touching a second per-connection object (cache misses at 1000s of clients).
        self._last_activity = self._loop.time()
        self._partial_since: float | None = None
        self._deadlines = Deadlines(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Register with the server (which may refuse), then start the handler."""
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        handler = self._handler
        handler.transport = transport
        handler.server = self._server
        handler.peer = _shared_host(transport.get_extra_info("peername"))
        if not self._server._register(self, transport):  # type: ignore[arg-type]
            self._conn_closed = True
            return
        self._registered = True
        self._start(transport)
        self._deadlines.arm()

    def _start(self, transport: asyncio.Transport) -> None:
        raise NotImplementedError

    def _gone(self) -> bool:
        raise NotImplementedError

    def _busy(self) -> bool:
        """True while the handler is working, which does not count as idle."""
        return False

    def _maybe_unregister(self) -> None:
        """Once the connection is gone: the handler's ``finish()``, then unregister."""
        if self._registered and self._gone():
            self._registered = False
            try:
                self._handler.finish()
            except Exception as exc:
                log_handler_error(self._handler, self._handler.peer, exc)
            self._server._unregister(self)  # type: ignore[arg-type]

    def _log_closing(self, level: int, exc: BaseException) -> None:
        """Log why the connection closes, naming the peer once (most errors name it)."""
        if getattr(exc, "peer", None) is not None:
            logger.log(level, "closing the connection: %s", exc)
        else:
            logger.log(level, "closing %s: %s", format_peer(self._handler.peer), exc)

    def _timed_out(self, which: str, seconds: float, *, abort: bool = False) -> None:
        """Count, log and close: deadline ``which`` of ``seconds`` has passed."""
        transport = self._transport
        if transport is None:
            return
        self._stats.connections_timed_out += 1
        logger.info(
            "closing %s: %s timeout (%g s)", format_peer(self._handler.peer), which, seconds
        )
        if abort or transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()
