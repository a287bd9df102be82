"""The creosote emitter without an event loop: for threads and the logging handler.

:class:`SocketEmitter` sends on one connected, non-blocking datagram socket and never
waits: what the kernel cannot take at once is dropped and counted.  The settings,
the broadcast refusal, the chunking and the counters are the asyncio
:class:`~asyncnet.creosote.Emitter`'s (:mod:`asyncnet.creosote._emitter_base`).
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from .._lifecycle import Closable
from ..errors import StateError
from ._emitter_base import EmitterBase
from ._protocol import MAX_MESSAGE_SIZE

__all__ = ["SocketEmitter"]


class SocketEmitter(EmitterBase, Closable):
    """The emitter for code without an event loop: one non-blocking socket.

    ``emit()`` hands each datagram to the kernel with a non-blocking send: when the
    kernel's buffer is full the message is dropped (``stats.dropped``), never waited
    for.  ICMP "port unreachable" comes back as ``ConnectionRefusedError`` on a later
    send and is counted in ``stats.refused``.  Safe to share between threads when
    calls are serialised (``logging.Handler`` holds its lock around ``emit``).

    A host name is resolved once, in the constructor (which may block for DNS); a
    numeric address never blocks.  :attr:`socket` after :meth:`close` raises
    :class:`~asyncnet.errors.StateError`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        bufsize: int | None = None,
        framed: bool = False,
        broadcast: bool = False,
        max_message_size: int = MAX_MESSAGE_SIZE,
        family: int = socket.AF_UNSPEC,
    ) -> None:
        super().__init__(
            host,
            port,
            bufsize=bufsize,
            framed=framed,
            broadcast=broadcast,
            max_message_size=max_message_size,
            family=family,
        )
        self._sock: socket.socket | None = None
        with self._opening():
            infos = socket.getaddrinfo(self.host, self.port, self.family, socket.SOCK_DGRAM)
            self._sock = self._connect(infos)

    @property
    def socket(self) -> socket.socket:
        """The underlying socket."""
        if self._sock is None:
            raise StateError("emitter closed")
        return self._sock

    @property
    def local_address(self) -> Any:
        """The emitter's own ``(host, port)``."""
        return self.socket.getsockname()

    def emit(self, message: str | bytes) -> int:
        """Send ``message`` now; return the number of datagrams sent (0: dropped)."""
        sock = self._sock
        if sock is None:
            self.stats.dropped += 1
            return 0
        datagrams = self._datagrams(message)
        sent = 0
        for datagram in datagrams:
            try:
                sock.send(datagram)
            except BlockingIOError:
                break  # the kernel's buffer is full: drop the rest, never wait
            except ConnectionRefusedError as exc:
                # The refusal is for an earlier datagram (reported on this call and
                # cleared): this one may still go.
                self._count_error(exc)
                try:
                    sock.send(datagram)
                except OSError:
                    break
            except OSError as exc:
                self._count_error(exc)
                break
            sent += 1
        if sent < len(datagrams):
            self.stats.dropped += 1
        else:
            self._sent(datagrams)
        return sent

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __del__(self) -> None:
        # A logging handler may never be closed; don't leave a ResourceWarning behind.
        if getattr(self, "_sock", None) is not None and not sys.is_finalizing():
            self.close()
