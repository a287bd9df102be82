"""What both creosote emitters share, whatever their I/O model.

:class:`~asyncnet.creosote.Emitter` (asyncio) and
:class:`~asyncnet.creosote.SocketEmitter` (a plain non-blocking socket) differ only in
how they wait, or refuse to.  Everything else is here, once: the settings and their
checks (:class:`EmitterBase`), the broadcast refusal (:func:`is_broadcast_address`),
message ids and chunking, the counters (:class:`EmitterStats`), the connected socket
both send on, and the one translation of an ``OSError`` met while opening it into an
asyncnet error.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import secrets
import socket
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, cast

from .._boundary import os_errors
from ..errors import BroadcastNotAllowed, ConfigurationError, format_peer
from ._protocol import chunk_framed, chunk_raw, prepare

logger = logging.getLogger("asyncnet.creosote")

__all__ = ["EmitterBase", "EmitterStats", "is_broadcast_address"]


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


class EmitterBase:
    """Settings, message ids, chunking and counters: what every emitter is made of.

    The constructor checks every setting, so a bad one fails where the emitter is
    made, not at the first message.  ``port`` and ``bufsize`` default to the module
    settings :data:`asyncnet.creosote.PORT` and :data:`asyncnet.creosote.BUFSIZE`.
    """

    def __init__(
        self,
        host: str,
        port: int | None,
        *,
        bufsize: int | None,
        framed: bool,
        broadcast: bool,
        max_message_size: int,
        family: int,
    ) -> None:
        self.host = host
        self.port = _setting("PORT") if port is None else port
        if not 0 < self.port <= 65535:
            raise ConfigurationError(f"port must be in 1..65535, not {self.port!r}")
        self.bufsize = _setting("BUFSIZE") if bufsize is None else bufsize
        self.framed = framed
        self.broadcast = broadcast
        self.max_message_size = max_message_size
        self.family = family
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

    @property
    def peer_text(self) -> str:
        """``host:port`` of the destination."""
        return format_peer((self.host, self.port))

    @contextmanager
    def _opening(self) -> Iterator[None]:
        """Where an emitter opens its socket: an ``OSError`` becomes an asyncnet error.

        The error names the destination; a :class:`~asyncnet.errors.BroadcastNotAllowed`
        or a :class:`~asyncnet.errors.ConfigurationError` passes through unchanged.
        """
        with os_errors(
            subject=f"creosote emitter cannot open a socket to {self.peer_text}",
            peer=(self.host, self.port),
            phase="open",
        ):
            yield

    def _connect(self, infos: Sequence[tuple[Any, ...]]) -> socket.socket:
        """A non-blocking datagram socket connected to the first ``getaddrinfo`` answer."""
        family, _, proto, _, address = infos[0]
        # A name may resolve to a broadcast address: checked again, once resolved.
        _check_broadcast(str(address[0]), self.broadcast)
        sock = socket.socket(family, socket.SOCK_DGRAM, proto)
        try:
            sock.setblocking(False)
            if self.broadcast:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            # A connected UDP socket is what makes the kernel report ICMP "port
            # unreachable" to us at all (an unconnected one never hears about it).
            sock.connect(address)
        except PermissionError as exc:
            sock.close()
            if exc.errno == errno.EACCES and not self.broadcast:
                raise BroadcastNotAllowed(
                    f"the kernel refused {self.host} ({exc.strerror}): if it is a broadcast "
                    "address, pass broadcast=True"
                ) from exc
            raise
        except BaseException:
            sock.close()
            raise
        return sock

    def _datagrams(self, message: str | bytes) -> list[bytes]:
        """``message`` as the datagrams to send (cut at the size limit, counted if so)."""
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
        """Count a send error the OS reported; nobody listening is ``refused``."""
        if isinstance(exc, ConnectionRefusedError):
            self.stats.refused += 1
        else:
            self.stats.errors += 1
            logger.debug("creosote emitter to %s: %r", self.peer_text, exc)
