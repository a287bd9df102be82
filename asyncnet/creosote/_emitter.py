"""The asyncio creosote emitter: spew debug messages at a UDP port, listened to or not.

The tutorial's ``spew(msg, host, port)`` made a socket, sent ``msg`` in ``BUFSIZE``
chunks and returned.  Here:

* :func:`spew` is that, as a coroutine: one message, one short-lived endpoint.
* :class:`Emitter` keeps one datagram endpoint open (``loop.create_datagram_endpoint``)
  for many messages.  ``emit()`` is a plain method that never waits and never raises
  because nobody listens: the ICMP "port unreachable" that a closed port sends back
  arrives later, through ``error_received``, and is counted in ``stats.refused``.  If
  the kernel cannot take datagrams as fast as they come, the transport buffers them;
  once that buffer is over ``max_buffer`` bytes, new messages are dropped and counted
  in ``stats.dropped`` instead of queueing without limit.

``broadcast=True`` sets ``SO_BROADCAST``, as the tutorial suggests for a LAN-wide
bucket.  Without it, a broadcast destination (``255.255.255.255``, ``<broadcast>``, or
the broadcast address of a local interface) raises
:class:`~asyncnet.errors.BroadcastNotAllowed` before anything is sent.  The settings,
the chunking and the counters are shared with the blocking
:class:`~asyncnet.creosote.SocketEmitter` (:mod:`asyncnet.creosote._emitter_base`).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, Self, cast

from .._lifecycle import Endpoint
from ..errors import ConfigurationError, StateError
from ._emitter_base import EmitterBase
from ._protocol import MAX_MESSAGE_SIZE

__all__ = ["DEFAULT_MAX_BUFFER", "Emitter", "spew"]

DEFAULT_MAX_BUFFER = 256 * 1024
"""Bytes the emitter's transport may buffer before new messages are dropped."""


def _buffered(transport: asyncio.DatagramTransport) -> int:
    # Both asyncio's and uvloop's datagram transports have it; typeshed does not know.
    size: int = getattr(transport, "get_write_buffer_size", lambda: 0)()
    return size


class _EmitterProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_error: Callable[[Exception], None]) -> None:
        self._on_error = on_error
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.writable = asyncio.Event()
        self.writable.set()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        pass  # a bucket never answers; anything else is not ours to read

    def error_received(self, exc: Exception) -> None:
        self._on_error(exc)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.writable.set()
        if not self.closed.done():
            self.closed.set_result(None)


class Emitter(EmitterBase, Endpoint):
    """A long-lived creosote sender on one datagram endpoint.

    ::

        async with Emitter(port=5555, framed=True) as emitter:
            emitter.emit("starting")            # never waits, never raises
            await emitter.send(big_report)      # yields between chunks

    ``host``/``port`` (default 127.0.0.1 and :data:`asyncnet.creosote.PORT`) are the
    bucket's address; ``bufsize`` (default :data:`asyncnet.creosote.BUFSIZE`) bounds
    every datagram; ``framed`` adds the reassembly header (see
    :mod:`asyncnet.creosote._protocol`); longer messages than ``max_message_size`` are
    cut with an explicit marker.  ``max_buffer`` bounds what the transport may hold
    when the kernel pushes back: past it, messages are dropped (``stats.dropped``).
    ``sock`` is an already connected datagram socket to use instead of opening one
    (a Unix datagram socket works too); ``host`` and ``port`` are then only labels.
    Starting twice, or asking for :attr:`local_address` or :attr:`socket` before
    :meth:`start`, raises :class:`~asyncnet.errors.StateError`.
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
        max_buffer: int = DEFAULT_MAX_BUFFER,
        family: int = socket.AF_UNSPEC,
        close_timeout: float = 1.0,
        sock: socket.socket | None = None,
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
        if max_buffer < 0:
            raise ConfigurationError(f"max_buffer must be >= 0, not {max_buffer!r}")
        self.max_buffer = max_buffer
        self.close_timeout = close_timeout
        self._given_socket = sock
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _EmitterProtocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> Self:
        """Resolve the destination and open the endpoint (no datagram is sent)."""
        if self._transport is not None:
            raise StateError("emitter already started")
        loop = asyncio.get_running_loop()
        with self._opening():
            if self._given_socket is not None:
                sock = self._given_socket
            else:
                infos = await loop.getaddrinfo(
                    self.host, self.port, family=self.family, type=socket.SOCK_DGRAM
                )
                sock = self._connect(infos)
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: _EmitterProtocol(self._count_error), sock=sock
                )
            except BaseException:
                sock.close()
                raise
        # Pause (and so make spew() wait) exactly when emit() would start dropping.
        set_limits = getattr(transport, "set_write_buffer_limits", None)
        if set_limits is not None:
            set_limits(high=self.max_buffer)
        self._loop = loop
        self._transport = transport
        self._protocol = protocol
        return self

    @property
    def is_open(self) -> bool:
        """Started and not closed."""
        return self._transport is not None and not self._transport.is_closing()

    @property
    def write_buffer_size(self) -> int:
        """Bytes emitted but not yet handed to the kernel (0 before :meth:`start`).

        It stays within ``max_buffer`` plus one message: past that, :meth:`emit` drops.
        """
        if self._transport is None:
            return 0
        return _buffered(self._transport)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the endpoint lives on (``None`` before :meth:`start`)."""
        return self._loop

    @property
    def local_address(self) -> Any:
        """The emitter's own ``(host, port)``: the sender a bucket shows."""
        if self._transport is None:
            raise StateError("emitter not started")
        return self._transport.get_extra_info("sockname")

    @property
    def socket(self) -> socket.socket:
        """The underlying socket (for ``getsockopt``)."""
        if self._transport is None:
            raise StateError("emitter not started")
        return cast(socket.socket, self._transport.get_extra_info("socket"))

    def emit(self, message: str | bytes) -> int:
        """Send ``message`` now; return the number of datagrams sent (0: dropped).

        Never waits and never raises for network reasons.  A ``str`` is sent as UTF-8.
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            self.stats.dropped += 1
            return 0
        if _buffered(transport) > self.max_buffer:
            self.stats.dropped += 1
            return 0
        datagrams = self._datagrams(message)
        for datagram in datagrams:
            transport.sendto(datagram)
        self._sent(datagrams)
        return len(datagrams)

    async def send(self, message: str | bytes, *, timeout: float = 1.0) -> int:
        """Send ``message``, letting the event loop run between its chunks.

        A bucket on the same loop keeps up with a long message this way (a burst of a
        thousand datagrams overflows a receive buffer), and if the kernel pushes back
        this waits up to ``timeout`` seconds for the buffer to drain, then drops the
        rest.  Returns the number of datagrams sent.
        """
        transport = self._transport
        protocol = self._protocol
        if transport is None or protocol is None or transport.is_closing():
            self.stats.dropped += 1
            return 0
        datagrams = self._datagrams(message)
        sent = 0
        for datagram in datagrams:
            if _buffered(transport) > self.max_buffer:
                try:
                    async with asyncio.timeout(timeout):
                        await protocol.writable.wait()
                except TimeoutError:
                    break
            if transport.is_closing():
                break
            transport.sendto(datagram)
            sent += 1
            if len(datagrams) > 1:
                await asyncio.sleep(0)
        if sent < len(datagrams):
            self.stats.dropped += 1
        else:
            self._sent(datagrams)
        return sent

    spew = send
    """The tutorial's word for :meth:`send` (kept for existing code)."""

    def close(self, grace: float | None = None) -> None:
        """Close the endpoint; buffered datagrams are still sent if the kernel takes them.

        ``grace`` overrides ``close_timeout``.
        """
        if grace is not None:
            self.close_timeout = grace
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        """Wait until the endpoint is closed (aborting it after ``close_timeout``)."""
        if self._transport is None or self._protocol is None:
            return
        try:
            async with asyncio.timeout(self.close_timeout):
                await asyncio.shield(self._protocol.closed)
        except TimeoutError:
            self._transport.abort()
            await self._protocol.closed


async def spew(
    message: str | bytes,
    host: str = "127.0.0.1",
    port: int | None = None,
    *,
    bufsize: int | None = None,
    framed: bool = False,
    broadcast: bool = False,
    max_message_size: int = MAX_MESSAGE_SIZE,
) -> int:
    """The tutorial's ``spew()``: send one message in ``BUFSIZE`` chunks; return the count.

    ``port`` and ``bufsize`` default to the module settings
    :data:`asyncnet.creosote.PORT` and :data:`asyncnet.creosote.BUFSIZE`.  Nobody
    listening is not an error.
    """
    async with Emitter(
        host,
        port,
        bufsize=bufsize,
        framed=framed,
        broadcast=broadcast,
        max_message_size=max_message_size,
    ) as emitter:
        return await emitter.send(message)
