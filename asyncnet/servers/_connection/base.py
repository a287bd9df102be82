"""What every stream connection shares: registering with its server, the handler's
``setup``/``finish`` bracket, counting, timeouts and logging handler failures."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, cast

from ...errors import format_peer

if TYPE_CHECKING:
    from .._handlers import BaseHandler
    from .._stream import StreamServer

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


class ConnectionBase:
    """One accepted connection: its server, handler, deadline stamps and registration.

    Subclasses (which also derive from an asyncio protocol class) implement
    :meth:`_start` (what happens once registered) and :meth:`_gone` (true once
    nothing more will run for this connection), and call :meth:`_maybe_unregister`
    whenever :meth:`_gone` may have become true.

    :attr:`quiescent` and :meth:`wait_quiescent` are public: they tell a test kit
    (``asyncnet.testing.drive``) when the handler has done all it can with the input
    it was given.
    """

    # Slots: see LineConnection on the size of an idle connection.  _prev/_next link
    # the server's registry (registry.py); the stamps are the sweep's (deadlines.py).
    __slots__ = (
        "_conn_closed",
        "_handler",
        "_next",
        "_partial_since",
        "_prev",
        "_seen",
        "_server",
        "_stats",
        "_transport",
        "_write_blocked_since",
    )

    _handler: BaseHandler
    _transport: asyncio.Transport | None

    def _init_connection(self, server: StreamServer, handler: BaseHandler) -> None:
        self._server = server
        self._stats = server.stats
        self._handler = handler
        self._transport = None
        self._conn_closed = False
        self._prev: ConnectionBase | None = None
        self._next: ConnectionBase | None = None
        self._seen = 0  # stamped for real once registered (the sweep's clock runs then)
        self._partial_since: int | None = None
        self._write_blocked_since: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Register with the server (which may refuse), then start the handler."""
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        handler = self._handler
        handler.transport = transport
        handler.server = self._server
        # handler.peer is fetched when first read (the BaseHandler.peer property): uvloop
        # makes a socket object to answer "peername" and keeps it, ~160 bytes with the
        # tuple, for every connection whether or not anything ever logs its peer.
        if not self._server._register(self, transport):  # type: ignore[arg-type]
            self._conn_closed = True
            return
        self._seen = self._server.deadlines.tick
        self._start(transport)

    @property
    def handler(self) -> BaseHandler:
        """The handler this connection drives."""
        return self._handler

    @property
    def quiescent(self) -> bool:
        """True when the handler has nothing left to do until more input arrives (or the
        peer reads what was written, or a deadline passes)."""
        raise NotImplementedError

    async def wait_quiescent(self) -> None:
        """Return once :attr:`quiescent` is true (at once if it is)."""
        raise NotImplementedError

    def _start(self, transport: asyncio.Transport) -> None:
        raise NotImplementedError

    def _gone(self) -> bool:
        raise NotImplementedError

    def _busy(self) -> bool:
        """True while the handler is working, which does not count as idle."""
        return False

    @property
    def _registered(self) -> bool:
        return self in self._server._connections

    def _stamp_write_blocked(self, blocked: bool) -> None:
        """The peer stopped taking our output (``pause_writing``), or reads again."""
        self._write_blocked_since = self._server.deadlines.tick if blocked else None

    def _maybe_unregister(self) -> None:
        """Once the connection is gone: the handler's ``finish()``, then unregister."""
        # Out of the registry before finish(): a re-entered call then finds it gone.
        server = self._server
        if self._gone() and server._connections.discard(self):  # type: ignore[arg-type]
            try:
                self._handler.finish()
            except Exception as exc:
                log_handler_error(self._handler, self._handler.peer, exc)
            server._unregister(self)  # type: ignore[arg-type]

    def _log_closing(self, level: int, exc: BaseException) -> None:
        """Log why the connection closes, naming the peer once (most errors name it)."""
        if getattr(exc, "peer", None) is not None:
            logger.log(level, "closing the connection: %s", exc)
        else:
            logger.log(level, "closing %s: %s", format_peer(self._handler.peer), exc)

    def _timed_out(self, which: str, seconds: float, *, abort: bool = False) -> None:
        """Count, log and close: deadline ``which`` of ``seconds`` has passed."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # closing already: counted once, by whoever closed it
        self._stats.connections_timed_out += 1
        logger.info(
            "closing %s: %s timeout (%g s)", format_peer(self._handler.peer), which, seconds
        )
        if abort or transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()
