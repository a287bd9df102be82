"""Point any program's logging at a creosote bucket, in two lines::

    from asyncnet.creosote import CreosoteHandler
    logging.getLogger().addHandler(CreosoteHandler())   # 127.0.0.1, asyncnet.creosote.PORT

Each record becomes one creosote message (framed by default, so a traceback longer
than ``BUFSIZE`` is reassembled by the bucket in one piece).  Logging must never hurt
the program that logs, so :meth:`CreosoteHandler.emit` never blocks and never raises
for network reasons: with no bucket listening the messages are simply lost (and
counted in :attr:`CreosoteHandler.stats`).

Inside an asyncio program, pass a started :class:`~asyncnet.creosote.Emitter` and the
handler uses its endpoint whenever it is called on that emitter's loop.  Everywhere
else (other threads, no running loop, before the emitter starts or after it closed)
it sends with a plain non-blocking socket of its own.  ``emit`` never starts or runs
an event loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from ._emitter import Emitter
from ._emitter_base import EmitterStats
from ._socket_emitter import SocketEmitter

__all__ = ["CreosoteHandler"]


class CreosoteHandler(logging.Handler):
    """A ``logging.Handler`` that sends each formatted record as a creosote message.

    ``host``/``port``/``bufsize``/``framed``/``broadcast`` are the emitter settings
    (``port`` and ``bufsize`` default to the module settings); ``emitter`` is an
    optional started :class:`Emitter` to use on its own loop.  Records longer than
    ``max_message_size`` are cut with the truncation marker.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        level: int = logging.NOTSET,
        emitter: Emitter | None = None,
        bufsize: int | None = None,
        framed: bool = True,
        broadcast: bool = False,
        max_message_size: int = 64 * 1024,
        family: int = socket.AF_UNSPEC,
    ) -> None:
        super().__init__(level)
        self.emitter = emitter
        # Opened now (resolving a host name here, not in emit) so that emit() only
        # ever does a non-blocking send.
        self._socket_emitter: SocketEmitter | None = SocketEmitter(
            host,
            port,
            bufsize=bufsize,
            framed=framed,
            broadcast=broadcast,
            max_message_size=max_message_size,
            family=family,
        )
        self._stats = self._socket_emitter.stats

    @property
    def stats(self) -> EmitterStats:
        """The counters of the handler's own socket (the emitter has its own ``stats``)."""
        return self._stats

    def _on_emitter_loop(self) -> bool:
        emitter = self.emitter
        if emitter is None or not emitter.is_open:
            return False
        try:
            return asyncio.get_running_loop() is emitter.loop
        except RuntimeError:
            return False

    def emit(self, record: logging.LogRecord) -> None:
        """Send the formatted record; never blocks, never raises for network reasons."""
        try:
            text = self.format(record)
            if self._on_emitter_loop():
                assert self.emitter is not None
                self.emitter.emit(text)
            elif self._socket_emitter is not None:
                self._socket_emitter.emit(text)
        except RecursionError:  # the logging module's own convention
            raise
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        """Close the handler's socket (a given emitter belongs to its owner)."""
        self.acquire()
        try:
            if self._socket_emitter is not None:
                self._socket_emitter.close()
                self._socket_emitter = None
        finally:
            self.release()
        super().close()
