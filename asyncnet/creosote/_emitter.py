"""The creosote emitter: spew debug messages at a UDP port, whether anybody listens or not.

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
* :class:`SocketEmitter` is the same without an event loop: a non-blocking socket,
  for threads and for the logging handler.

``broadcast=True`` sets ``SO_BROADCAST``, as the tutorial suggests for a LAN-wide
bucket.  Without it, a broadcast destination (``255.255.255.255``, ``<broadcast>``, or
the broadcast address of a local interface) raises :class:`BroadcastNotAllowed` before
anything is sent.

(Longer than asyncnet's ~400-line guide: the asyncio Emitter and the blocking
SocketEmitter share the broadcast refusal, the chunker and the counters; the split
between them is by I/O model, not by idea.)
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import secrets
import socket
import struct
import sys
from dataclasses import asdict, dataclass
from typing import Any, Self, cast

from .._boundary import translate_os_error
from .._lifecycle import Closable, Endpoint
from ..errors import BroadcastNotAllowed, ConfigurationError, format_peer
from ._protocol import (
    MAX_MESSAGE_SIZE,
    chunk_framed,
    chunk_raw,
    prepare,
)

logger = logging.getLogger("asyncnet.creosote")

__all__ = [
    "BroadcastNotAllowed",
    "Emitter",
    "EmitterStats",
    "SocketEmitter",
    "is_broadcast_address",
    "spew",
]

DEFAULT_MAX_BUFFER = 256 * 1024
"""Bytes the emitter's transport may buffer before new messages are dropped."""


@dataclass(slots=True)
class EmitterStats:
    """Counters kept by an emitter; it only ever adds to them."""

    messages: int = 0
    """Messages handed to the socket (all their datagrams)."""
    datagrams: int = 0
    """Datagrams handed to the socket (a refused one is counted here and in ``refused``)."""
    bytes: int = 0
    dropped: int = 0
    """Messages not sent: the buffer was over its bound, or the emitter was closed."""
    truncated: int = 0
    """Messages cut at ``max_message_size`` (they end with the truncation marker)."""
    refused: int = 0
    """ICMP "port unreachable" reports: nobody was listening."""
    errors: int = 0
    """Other send errors the OS reported (network unreachable, permission...)."""

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return asdict(self)


def _setting(name: str) -> int:
    # Read at call time, so `asyncnet.creosote.BUFSIZE = 4096` works as in the tutorial.
    from .. import creosote

    return cast(int, getattr(creosote, name))


def _interface_broadcasts() -> set[ipaddress.IPv4Address]:
    """The IPv4 broadcast addresses of this machine's interfaces (Linux; else empty)."""
    try:
        import fcntl
    except ImportError:  # Windows: the kernel still refuses with EACCES
        return set()
    siocgifbrdaddr = 0x8919
    found: set[ipaddress.IPv4Address] = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            interfaces = socket.if_nameindex()
        except OSError:
            return found
        for _, name in interfaces:
            request = struct.pack("256s", name.encode()[:15])
            try:
                reply = fcntl.ioctl(probe.fileno(), siocgifbrdaddr, request)
            except OSError:
                continue  # no IPv4 address on this interface
            address = ipaddress.IPv4Address(reply[20:24])
            if not address.is_unspecified:
                found.add(address)
    return found


def is_broadcast_address(host: str) -> bool:
    """True for ``<broadcast>``, 255.255.255.255 and the broadcast address of a local interface.

    Only numeric IPv4 addresses can be broadcast addresses; names are resolved by the
    emitter and checked again.  A directed broadcast to a subnet this machine is not
    on cannot be recognised here; the kernel refuses it without ``SO_BROADCAST``
    anyway (counted in ``stats.errors``).
    """
    if host == "<broadcast>":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if not isinstance(address, ipaddress.IPv4Address) or address.is_loopback:
        return False
    return address == ipaddress.IPv4Address("255.255.255.255") or (
        address in _interface_broadcasts()
    )


def _check_broadcast(host: str, broadcast: bool) -> None:
    if not broadcast and is_broadcast_address(host):
        raise BroadcastNotAllowed(
            f"{host} is a broadcast address: pass broadcast=True to send creosote "
            "messages to every machine on the network"
        )


class _Framer:
    """What every emitter shares: settings, message ids, chunking, counters."""

    def __init__(
        self,
        host: str,
        port: int | None,
        bufsize: int | None,
        framed: bool,
        broadcast: bool,
        max_message_size: int,
    ) -> None:
        self.host = host
        self.port = _setting("PORT") if port is None else port
        if not 0 < self.port <= 65535:
            raise ConfigurationError(f"port must be in 1..65535, not {self.port!r}")
        self.bufsize = _setting("BUFSIZE") if bufsize is None else bufsize
        self.framed = framed
        self.broadcast = broadcast
        self.max_message_size = max_message_size
        self.stats = EmitterStats()
        # A random start keeps a restarted sender (same port, within the bucket's
        # expiry) from having its chunks mixed with the previous run's.
        self._next_id = secrets.randbits(32)
        _check_broadcast(host, broadcast)
        # Refuse a bad bufsize or size limit now rather than at the first emit().
        prepare(b"", max_message_size)
        if framed:
            chunk_framed(b"", 0, self.bufsize)
        else:
            chunk_raw(b"", self.bufsize)

    def _datagrams(self, message: str | bytes) -> list[bytes]:
        data, truncated = prepare(message, self.max_message_size)
        if truncated:
            self.stats.truncated += 1
        if not self.framed:
            return chunk_raw(data, self.bufsize)
        message_id = self._next_id
        self._next_id = (message_id + 1) & 0xFFFFFFFF
        return chunk_framed(data, message_id, self.bufsize, truncated=truncated)

    def _sent(self, datagrams: list[bytes]) -> None:
        self.stats.messages += 1
        self.stats.datagrams += len(datagrams)
        self.stats.bytes += sum(map(len, datagrams))

    def _count_error(self, exc: BaseException) -> None:
        if isinstance(exc, ConnectionRefusedError):
            self.stats.refused += 1
        else:
            self.stats.errors += 1
            logger.debug("creosote emitter to %s: %r", self.peer_text, exc)

    @property
    def peer_text(self) -> str:
        """``host:port`` of the destination."""
        return format_peer((self.host, self.port))


def _open_socket(
    family: int, proto: int, address: Any, broadcast: bool, host: str
) -> socket.socket:
    _check_broadcast(str(address[0]), broadcast)
    sock = socket.socket(family, socket.SOCK_DGRAM, proto)
    try:
        sock.setblocking(False)
        if broadcast:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        # A connected UDP socket is what makes the kernel report ICMP "port
        # unreachable" to us at all (an unconnected one never hears about it).
        sock.connect(address)
    except PermissionError as exc:
        sock.close()
        if exc.errno == errno.EACCES and not broadcast:
            raise BroadcastNotAllowed(
                f"the kernel refused {host} ({exc.strerror}): if it is a broadcast address, "
                "pass broadcast=True"
            ) from exc
        raise
    except BaseException:
        sock.close()
        raise
    return sock


def _buffered(transport: asyncio.DatagramTransport) -> int:
    # Both asyncio's and uvloop's datagram transports have it; typeshed does not know.
    size: int = getattr(transport, "get_write_buffer_size", lambda: 0)()
    return size


class _EmitterProtocol(asyncio.DatagramProtocol):
    def __init__(self, emitter: Emitter) -> None:
        self._emitter = emitter
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.writable = asyncio.Event()
        self.writable.set()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        pass  # a bucket never answers; anything else is not ours to read

    def error_received(self, exc: Exception) -> None:
        self._emitter._count_error(exc)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.writable.set()
        if not self.closed.done():
            self.closed.set_result(None)


class Emitter(_Framer, Endpoint):
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
        super().__init__(host, port, bufsize, framed, broadcast, max_message_size)
        self._given_socket = sock
        if max_buffer < 0:
            raise ConfigurationError(f"max_buffer must be >= 0, not {max_buffer!r}")
        self.max_buffer = max_buffer
        self.family = family
        self.close_timeout = close_timeout
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _EmitterProtocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> Self:
        """Resolve the destination and open the endpoint (no datagram is sent)."""
        if self._transport is not None:
            raise RuntimeError("emitter already started")
        loop = asyncio.get_running_loop()
        try:
            if self._given_socket is not None:
                sock = self._given_socket
            else:
                infos = await loop.getaddrinfo(
                    self.host, self.port, family=self.family, type=socket.SOCK_DGRAM
                )
                family, _, proto, _, address = infos[0]
                sock = _open_socket(family, proto, address, self.broadcast, self.host)
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: _EmitterProtocol(self), sock=sock
                )
            except BaseException:
                sock.close()
                raise
        except (BroadcastNotAllowed, ConfigurationError):
            raise
        except OSError as exc:
            raise translate_os_error(
                exc,
                subject=f"creosote emitter cannot open a socket to {self.peer_text}",
                peer=(self.host, self.port),
                phase="open",
            ) from exc
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
            raise RuntimeError("emitter not started")
        return self._transport.get_extra_info("sockname")

    @property
    def socket(self) -> socket.socket:
        """The underlying socket (for ``getsockopt``)."""
        if self._transport is None:
            raise RuntimeError("emitter not started")
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


class SocketEmitter(_Framer, Closable):
    """The emitter for code without an event loop: one non-blocking socket.

    ``emit()`` hands each datagram to the kernel with a non-blocking send: when the
    kernel's buffer is full the message is dropped (``stats.dropped``), never waited
    for.  ICMP "port unreachable" comes back as ``ConnectionRefusedError`` on a later
    send and is counted in ``stats.refused``.  Safe to share between threads when
    calls are serialised (``logging.Handler`` holds its lock around ``emit``).

    A host name is resolved once, in the constructor (which may block for DNS); a
    numeric address never blocks.
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
        super().__init__(host, port, bufsize, framed, broadcast, max_message_size)
        try:
            family, _, proto, _, address = socket.getaddrinfo(
                host, self.port, family, socket.SOCK_DGRAM
            )[0]
            self._sock: socket.socket | None = _open_socket(family, proto, address, broadcast, host)
        except (BroadcastNotAllowed, ConfigurationError):
            raise
        except OSError as exc:
            raise translate_os_error(
                exc,
                subject=f"creosote emitter cannot open a socket to {self.peer_text}",
                peer=(host, self.port),
                phase="open",
            ) from exc

    @property
    def socket(self) -> socket.socket:
        """The underlying socket."""
        if self._sock is None:
            raise RuntimeError("emitter closed")
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
