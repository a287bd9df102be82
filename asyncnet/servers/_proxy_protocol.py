"""PROXY protocol on a stream server: read the balancer's header, then hand over.

``StreamServer(..., proxy_protocol=True)`` wraps its protocol factory with
:class:`ProxyProtocolOptions.wrap`.  Each accepted connection first gets a
:class:`ProxyHandshake`, which

1. refuses a peer outside the trusted networks (default: loopback only) -- anyone
   who can send a header can claim any client address, so only the balancer may;
2. reads one PROXY v1/v2 header (:mod:`asyncnet.protocols._proxy`) within
   ``header_timeout`` seconds;
3. swaps the transport over to the server's real connection protocol, behind a
   :class:`ProxiedTransport` whose ``get_extra_info("peername")`` is the real
   client, and passes on whatever the client sent after the header.

A missing, malformed, truncated or oversized header closes the connection: the
handler is never created, so it never sees a byte.  Each refusal is counted in the
server's stats at once, but logged at most once per 10 seconds per kind
(untrusted source, bad header, header timeout), with the number since the last
line: a flood of refused connections must not become a flood of log lines.

The header and its TLVs stay available as ``transport.get_extra_info("proxy_header")``
/ ``("proxy_tlvs")``, and the balancer's own address as
``get_extra_info("proxy_peername")``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from .._ratelimit import RateLimitedLog
from ..errors import ConfigurationError, format_peer
from ..protocols import NEED_DATA, ProxyHeader, ProxyHeaderError, ProxyHeaderParser

if TYPE_CHECKING:
    from ._stats import ServerStats

logger = logging.getLogger("asyncnet.server")

__all__ = [
    "DEFAULT_TRUSTED",
    "HandshakeFactory",
    "ProxiedTransport",
    "ProxyHandshake",
    "ProxyProtocolOptions",
    "is_trusted",
    "parse_networks",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_TRUSTED = ("127.0.0.0/8", "::1/128")
"""Only a balancer on this machine may send PROXY headers unless told otherwise."""


def parse_networks(spec: Iterable[str | Network] | str, option: str) -> tuple[Network, ...]:
    """``["10.0.0.0/8", "::1"]`` as networks; :class:`ConfigurationError` names ``option``."""
    if isinstance(spec, str):
        spec = [spec]
    networks: list[Network] = []
    for item in spec:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"{option}: {item!r} is not a network ({exc})") from None
    if not networks:
        raise ConfigurationError(f"{option} is empty: no balancer could connect")
    return tuple(networks)


def is_trusted(peer: Any, networks: tuple[Network, ...]) -> bool:
    """True when ``peer`` (a socket address) lies in ``networks``; Unix sockets are local."""
    if not isinstance(peer, tuple):
        return True  # AF_UNIX: only processes that may open the socket file connect
    try:
        ip = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)


@dataclass(frozen=True)
class ProxyProtocolOptions:
    """How a server accepts PROXY headers (built from ``StreamServer``'s options)."""

    trusted: tuple[Network, ...]
    header_timeout: float = 5.0
    max_v2_length: int = 2048

    @classmethod
    def build(
        cls,
        trusted: Iterable[str | Network] | str | None = None,
        header_timeout: float = 5.0,
        max_v2_length: int = 2048,
    ) -> ProxyProtocolOptions:
        """Validate the server options, naming the one that is wrong."""
        if header_timeout <= 0:
            raise ConfigurationError(f"proxy_header_timeout must be > 0, not {header_timeout!r}")
        if not 0 <= max_v2_length <= 0xFFFF:
            raise ConfigurationError(f"max_v2_length must be in 0..65535, not {max_v2_length!r}")
        networks = parse_networks(DEFAULT_TRUSTED if trusted is None else trusted, "proxy_trusted")
        return cls(networks, header_timeout, max_v2_length)

    def wrap(
        self, factory: Callable[[], asyncio.Protocol], *, name: str, stats: ServerStats
    ) -> HandshakeFactory:
        """A protocol factory that reads the header before ``factory``'s protocol runs."""
        return HandshakeFactory(factory, self, name=name, stats=stats)


class HandshakeFactory:
    """Makes a :class:`ProxyHandshake` per connection and tracks those still waiting."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        options: ProxyProtocolOptions,
        *,
        name: str,
        stats: ServerStats,
    ) -> None:
        self._factory = factory
        self._options = options
        self._name = name
        self._stats = stats
        self.pending: set[ProxyHandshake] = set()
        """Connections whose header has not arrived yet (not yet the server's)."""
        self._logs = _RefusalLogs()

    def __call__(self) -> ProxyHandshake:
        return ProxyHandshake(
            self._factory,
            self._options,
            name=self._name,
            stats=self._stats,
            pending=self.pending,
            logs=self._logs,
        )

    def close_all(self) -> None:
        """The server is shutting down: drop connections still waiting for a header."""
        for handshake in list(self.pending):
            handshake.abort()


class _RefusalLogs:
    """One server's rate-limited log lines about refused connections, one per kind.

    Separate kinds, so that a flood of one (a port scan from outside the trusted
    networks) cannot hide the first line of another (a misconfigured balancer).
    """

    __slots__ = ("bad_header", "timeout", "untrusted")

    def __init__(self) -> None:
        self.untrusted = RateLimitedLog()
        self.bad_header = RateLimitedLog()
        self.timeout = RateLimitedLog()


class ProxyHandshake(asyncio.Protocol):
    """The first protocol on a connection: check the source, read the header, hand over."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        options: ProxyProtocolOptions,
        *,
        name: str,
        stats: ServerStats,
        pending: set[ProxyHandshake] | None = None,
        logs: _RefusalLogs | None = None,
    ) -> None:
        self._factory = factory
        self._options = options
        self._name = name
        self._stats = stats
        self._pending = set() if pending is None else pending
        self._logs = _RefusalLogs() if logs is None else logs
        self._transport: asyncio.Transport | None = None
        self._parser: ProxyHeaderParser | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._transport = transport
        peer = transport.get_extra_info("peername")
        loop = asyncio.get_running_loop()
        if not is_trusted(peer, self._options.trusted):
            self._stats.connections_refused += 1
            if since := self._logs.untrusted.hit(loop.time()):
                logger.warning(
                    "%s: refused %d connection(s), latest from %s: not a trusted PROXY "
                    "protocol source (proxy_trusted); %d refused so far",
                    self._name,
                    since,
                    format_peer(peer),
                    self._stats.connections_refused,
                )
            transport.abort()
            return
        self._parser = ProxyHeaderParser(max_v2_length=self._options.max_v2_length, peer=peer)
        self._pending.add(self)
        self._timer = loop.call_later(self._options.header_timeout, self._header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._parser is None or self._transport is None:
            return
        try:
            header = self._parser.feed(data)
        except ProxyHeaderError as exc:
            self._fail(exc)
            return
        if header is NEED_DATA:
            return
        assert isinstance(header, ProxyHeader)
        self._hand_over(self._transport, header, self._parser.rest)

    def eof_received(self) -> bool:
        parser = self._parser
        if parser is None:
            return False
        if parser.buffered == 0:
            # A bare connect-and-close: a balancer's TCP port check, typically.
            logger.debug("%s: connection closed before a PROXY header", self._name)
            self._stop()
            return False
        try:
            parser.feed_eof()
        except ProxyHeaderError as exc:
            self._fail(exc)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()

    # -- internals ----------------------------------------------------------------

    def abort(self) -> None:
        """Drop the connection if it is still waiting for its header."""
        if self._parser is not None and self._transport is not None:
            self._stop()
            self._transport.abort()

    def _stop(self) -> None:
        self._pending.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._parser = None

    def _fail(self, exc: ProxyHeaderError) -> None:
        self._stats.protocol_errors += 1
        if since := self._logs.bad_header.hit(asyncio.get_running_loop().time()):
            logger.warning(
                "%s: closed %d connection(s), latest: %s; %d protocol errors so far",
                self._name,
                since,
                exc,
                self._stats.protocol_errors,
            )
        self._stop()
        if self._transport is not None:
            self._transport.abort()

    def _header_timeout(self) -> None:
        self._timer = None
        if self._transport is None or self._parser is None:
            return
        self._stats.connections_timed_out += 1
        if since := self._logs.timeout.hit(asyncio.get_running_loop().time()):
            logger.warning(
                "%s: closed %d connection(s), latest %s: no complete PROXY protocol header "
                "within %g s (%d bytes); %d timed out so far",
                self._name,
                since,
                format_peer(self._transport.get_extra_info("peername")),
                self._options.header_timeout,
                self._parser.buffered,
                self._stats.connections_timed_out,
            )
        self._stop()
        self._transport.abort()

    def _hand_over(self, transport: asyncio.Transport, header: ProxyHeader, rest: bytes) -> None:
        self._stop()
        proxied = ProxiedTransport(transport, header)
        logger.info(
            "%s: connection from %s via %s (PROXY v%d)",
            self._name,
            format_peer(proxied.get_extra_info("peername")),
            format_peer(transport.get_extra_info("peername")),
            header.version,
        )
        protocol = self._factory()
        # From now on asyncio calls the real protocol directly: no per-read detour.
        transport.set_protocol(protocol)
        protocol.connection_made(proxied)
        if rest and not transport.is_closing():
            protocol.data_received(rest)


class ProxiedTransport(asyncio.Transport):
    """A transport that reports the client named by the PROXY header as its peer."""

    def __init__(self, transport: asyncio.Transport, header: ProxyHeader) -> None:
        super().__init__()
        self._real = transport
        self.header = header
        peer = transport.get_extra_info("peername")
        self._extra = {
            "peername": header.source if header.is_proxied else peer,
            "proxy_peername": peer,
            "proxy_header": header,
            "proxy_tlvs": header.tlvs,
            "proxy_destination": header.destination,
        }

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """As the real transport's, but ``peername`` is the real client (see module doc)."""
        if name in self._extra:
            return self._extra[name]
        return self._real.get_extra_info(name, default)

    @property
    def max_size(self) -> int:
        """The real transport's read size (the server tunes it; see ``StreamServer``)."""
        return int(getattr(self._real, "max_size", 0))

    @max_size.setter
    def max_size(self, value: int) -> None:
        if hasattr(self._real, "max_size"):
            self._real.max_size = value

    # Everything else is the real transport's.

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write to the real transport."""
        self._real.write(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        """Write to the real transport."""
        self._real.writelines(list_of_data)

    def write_eof(self) -> None:
        """Half-close the real transport."""
        self._real.write_eof()

    def can_write_eof(self) -> bool:
        """Whether the real transport can half-close."""
        return self._real.can_write_eof()

    def close(self) -> None:
        """Close the real transport."""
        self._real.close()

    def abort(self) -> None:
        """Abort the real transport."""
        self._real.abort()

    def is_closing(self) -> bool:
        """Whether the real transport is closing."""
        return self._real.is_closing()

    def pause_reading(self) -> None:
        """Pause reading on the real transport."""
        self._real.pause_reading()

    def resume_reading(self) -> None:
        """Resume reading on the real transport."""
        self._real.resume_reading()

    def is_reading(self) -> bool:
        """Whether the real transport is reading."""
        return self._real.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the real transport's write buffer limits."""
        self._real.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        """The real transport's write buffer size."""
        return self._real.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The real transport's write buffer limits."""
        return self._real.get_write_buffer_limits()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Set the real transport's protocol."""
        self._real.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The real transport's protocol."""
        return self._real.get_protocol()
