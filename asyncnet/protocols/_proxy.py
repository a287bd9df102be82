"""Sans-IO parser for the PROXY protocol (versions 1 and 2), as HAProxy sends it.

A load balancer that relays TCP connects to the server itself, so every peer a
server sees is the balancer.  The PROXY protocol fixes that: before the client's
first byte the balancer sends one header naming the real client (and the address
it connected to).  Version 1 is a text line, version 2 a binary header that may
carry extra type-length-value fields (TLVs: the TLS SNI, a unique id...).  The
specification is HAProxy's ``doc/proxy-protocol.txt``.

:class:`ProxyHeaderParser` is fed bytes as they arrive and returns the parsed
:class:`ProxyHeader` once it is complete, or :data:`NEED_DATA`; the bytes that
followed the header (the client's own data) are in :attr:`ProxyHeaderParser.rest`::

    parser = ProxyHeaderParser()
    header = parser.feed(b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 443\\r\\nGET /")
    header.source                # ("192.0.2.7", 40000)
    parser.rest                  # b"GET /"

Rules:

* **Strict.**  Anything that is not a well-formed header raises
  :class:`ProxyHeaderError` (a :class:`~asyncnet.errors.PeerProtocolError`) with the
  reason; there is no fallback to "no header": a server that expects the PROXY
  protocol must never take a client's bytes for one, or the other way round.
* **Early.**  Bytes that cannot start a header are refused as soon as they arrive
  (the first byte of ``GET`` already), so a client talking to the wrong port gets
  an error at once rather than a timeout.
* **Bounded.**  A version 1 line is at most 107 bytes (CRLF included), as the
  specification says; a version 2 header announcing more than ``max_v2_length``
  bytes after its 16-byte preamble is refused before they are read.
* **Any split, same result.**  The header can arrive a byte at a time.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn

from ..errors import ConfigurationError, PeerProtocolError, format_peer
from ._framing import NEED_DATA, NeedData

__all__ = [
    "NEED_DATA",
    "V1_MAX_LENGTH",
    "V2_SIGNATURE",
    "ProxyHeader",
    "ProxyHeaderError",
    "ProxyHeaderParser",
    "TLV",
    "encode_v1",
    "encode_v2",
]

V1_MAX_LENGTH: Final = 107
"""The longest version 1 line, ``PROXY`` to CRLF (the specification's limit)."""

V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
"""The 12 bytes every version 2 header starts with."""

_V1_PREFIX: Final = b"PROXY "
_V2_PREAMBLE: Final = struct.Struct("!12sBBH")  # signature, version/command, family, length
_V2_ADDRESS_LENGTH: Final = {0x1: 12, 0x2: 36, 0x3: 216}  # AF_INET, AF_INET6, AF_UNIX
_FAMILY_NAMES: Final = {0x0: "UNSPEC", 0x1: "TCP4", 0x2: "TCP6", 0x3: "UNIX"}
_TRANSPORT_NAMES: Final = {0x0: "UNSPEC", 0x1: "STREAM", 0x2: "DGRAM"}
_DIGITS: Final = frozenset(b"0123456789")


class TLV:
    """Version 2 TLV type codes from the specification (section 2.2)."""

    ALPN: Final = 0x01
    AUTHORITY: Final = 0x02
    CRC32C: Final = 0x03
    NOOP: Final = 0x04
    UNIQUE_ID: Final = 0x05
    SSL: Final = 0x20
    NETNS: Final = 0x30


class ProxyHeaderError(PeerProtocolError):
    """A PROXY protocol header was malformed, truncated, too long or not there at all."""

    def __init__(self, reason: str, peer: Any = None) -> None:
        self.reason = reason
        self.peer = peer
        where = f" from {format_peer(peer)}" if peer is not None else ""
        super().__init__(f"bad PROXY protocol header{where}: {reason}")


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """What a PROXY protocol header said.

    ``command`` is ``"PROXY"`` (relayed connection: ``source`` is the real client)
    or ``"LOCAL"`` (a connection the balancer made itself, a health check for
    instance: use the connection's own addresses).  ``family`` is ``"TCP4"``,
    ``"TCP6"``, ``"UNIX"`` or ``"UNKNOWN"``; with ``"UNKNOWN"`` (or ``"LOCAL"``) ``source`` and
    ``destination`` are ``None`` and the real addresses are not known.
    """

    version: int
    command: str
    family: str
    source: tuple[str, int] | str | None = None
    destination: tuple[str, int] | str | None = None
    transport: str = "STREAM"
    tlvs: tuple[tuple[int, bytes], ...] = field(default=())

    @property
    def is_proxied(self) -> bool:
        """True when the header names the real client (``source`` is set)."""
        return self.command == "PROXY" and self.source is not None

    def tlv(self, kind: int) -> bytes | None:
        """The value of the first TLV of type ``kind`` (see :class:`TLV`), or ``None``."""
        for tlv_type, value in self.tlvs:
            if tlv_type == kind:
                return value
        return None


class ProxyHeaderParser:
    """Parse one PROXY protocol header (v1 or v2) from bytes fed in pieces."""

    def __init__(self, *, max_v2_length: int = 2048, peer: Any = None) -> None:
        if not 0 <= max_v2_length <= 0xFFFF:
            raise ConfigurationError(f"max_v2_length must be in 0..65535, not {max_v2_length!r}")
        self.max_v2_length = max_v2_length
        self.peer = peer
        self.header: ProxyHeader | None = None
        self.rest = b""
        """Bytes received after the header: the start of the client's own data."""
        self._buffer = bytearray()
        self._error: ProxyHeaderError | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> ProxyHeader | NeedData:
        """Add received bytes; return the header once complete, else :data:`NEED_DATA`.

        After the header, further bytes go to :attr:`rest`.  Raises
        :class:`ProxyHeaderError` as soon as the bytes cannot be a header, and again
        on every later call.
        """
        if self._error is not None:
            raise self._error
        if self.header is not None:
            self.rest += bytes(data)
            return self.header
        self._buffer += data
        header = self._parse()
        if header is not NEED_DATA:
            self.header = header
        return header

    def feed_eof(self) -> None:
        """The connection ended: raise :class:`ProxyHeaderError` if the header is incomplete."""
        if self._error is not None:
            raise self._error
        if self.header is None:
            self._fail(f"connection closed after {len(self._buffer)} bytes of the header")

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete header held so far."""
        return len(self._buffer)

    # -- parsing ------------------------------------------------------------------

    def _fail(self, reason: str) -> NoReturn:
        self._error = ProxyHeaderError(reason, self.peer)
        self._buffer = bytearray()
        raise self._error

    def _parse(self) -> ProxyHeader | NeedData:
        buf = self._buffer
        if buf[:1] == b"P":
            if not _V1_PREFIX.startswith(bytes(buf[:6])):
                self._fail("does not start with 'PROXY ' or the version 2 signature")
            return self._parse_v1()
        if not V2_SIGNATURE.startswith(bytes(buf[:12])):
            self._fail("does not start with 'PROXY ' or the version 2 signature")
        return self._parse_v2()

    def _parse_v1(self) -> ProxyHeader | NeedData:
        buf = self._buffer
        lf = buf.find(b"\n", 0, V1_MAX_LENGTH)
        if lf < 0:
            if len(buf) >= V1_MAX_LENGTH:
                self._fail(f"version 1 line longer than {V1_MAX_LENGTH} bytes")
            return NEED_DATA
        if buf[lf - 1 : lf] != b"\r":
            self._fail("version 1 line ends with LF, not CRLF")
        line = bytes(buf[: lf - 1])
        rest = bytes(buf[lf + 1 :])
        header = _parse_v1_line(line)
        if isinstance(header, str):
            self._fail(header)
        self.rest = rest
        self._buffer = bytearray()
        return header

    def _parse_v2(self) -> ProxyHeader | NeedData:
        buf = self._buffer
        if len(buf) < _V2_PREAMBLE.size:
            return NEED_DATA
        _, version_command, family_transport, length = _V2_PREAMBLE.unpack_from(buf)
        if version_command >> 4 != 2:
            self._fail(f"version 2 signature with version {version_command >> 4}")
        command = {0x0: "LOCAL", 0x1: "PROXY"}.get(version_command & 0xF)
        if command is None:
            self._fail(f"unknown version 2 command {version_command & 0xF:#x}")
        family = _FAMILY_NAMES.get(family_transport >> 4)
        transport = _TRANSPORT_NAMES.get(family_transport & 0xF)
        if family is None or transport is None:
            self._fail(f"unknown version 2 address family/protocol {family_transport:#04x}")
        if length > self.max_v2_length:
            self._fail(f"version 2 header announces {length} bytes (limit {self.max_v2_length})")
        total = _V2_PREAMBLE.size + length
        if len(buf) < total:
            return NEED_DATA
        body = bytes(buf[_V2_PREAMBLE.size : total])
        rest = bytes(buf[total:])
        header = _parse_v2_body(command, family, transport, family_transport >> 4, body)
        if isinstance(header, str):
            self._fail(header)
        self.rest = rest
        self._buffer = bytearray()
        return header


def _parse_v1_line(line: bytes) -> ProxyHeader | str:
    """The header a version 1 line (without CRLF) stands for, or why it is invalid."""
    parts = line.split(b" ")
    if len(parts) < 2 or parts[0] != b"PROXY":
        return "version 1 line without a protocol"
    if parts[1] == b"UNKNOWN":
        # The specification lets the sender put anything after UNKNOWN; ignore it.
        return ProxyHeader(version=1, command="PROXY", family="UNKNOWN")
    if parts[1] not in (b"TCP4", b"TCP6"):
        return f"version 1 protocol {parts[1][:8]!r} is not TCP4, TCP6 or UNKNOWN"
    if len(parts) != 6:
        return "version 1 line needs exactly: PROXY protocol source destination ports"
    family = parts[1].decode()
    addresses: list[str] = []
    for raw in parts[2:4]:
        try:
            ip = ipaddress.ip_address(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return f"version 1 address {raw[:40]!r} is not an IP address"
        if ip.version != (4 if family == "TCP4" else 6):
            return f"version 1 address {raw[:40]!r} is not an {family} address"
        addresses.append(str(ip))
    ports: list[int] = []
    for raw in parts[4:6]:
        if not raw or not set(raw) <= _DIGITS or (raw[0:1] == b"0" and raw != b"0"):
            return f"version 1 port {raw[:8]!r} is not a decimal number"
        port = int(raw)
        if port > 65535:
            return f"version 1 port {port} is above 65535"
        ports.append(port)
    return ProxyHeader(
        version=1,
        command="PROXY",
        family=family,
        source=(addresses[0], ports[0]),
        destination=(addresses[1], ports[1]),
    )


def _parse_v2_body(
    command: str, family: str, transport: str, family_code: int, body: bytes
) -> ProxyHeader | str:
    """The header a version 2 address block plus TLVs stands for, or why it is invalid."""
    if command == "LOCAL" or family == "UNSPEC":
        # The balancer's own connection (LOCAL), or addresses it does not know:
        # the specification says to ignore the address block and what follows.
        return ProxyHeader(version=2, command=command, family="UNKNOWN", transport=transport)
    address_length = _V2_ADDRESS_LENGTH[family_code]
    if len(body) < address_length:
        return f"version 2 {family} header of {len(body)} bytes, addresses need {address_length}"
    source: tuple[str, int] | str
    destination: tuple[str, int] | str
    if family == "TCP4":
        src, dst, sport, dport = struct.unpack_from("!4s4sHH", body)
        source = (str(ipaddress.IPv4Address(src)), sport)
        destination = (str(ipaddress.IPv4Address(dst)), dport)
    elif family == "TCP6":
        src, dst, sport, dport = struct.unpack_from("!16s16sHH", body)
        source = (str(ipaddress.IPv6Address(src)), sport)
        destination = (str(ipaddress.IPv6Address(dst)), dport)
    else:  # UNIX: two NUL-padded 108-byte paths
        source = body[:108].split(b"\0", 1)[0].decode("utf-8", "replace")
        destination = body[108:216].split(b"\0", 1)[0].decode("utf-8", "replace")
    tlvs = _parse_tlvs(body[address_length:])
    if isinstance(tlvs, str):
        return tlvs
    return ProxyHeader(
        version=2,
        command=command,
        family=family,
        source=source,
        destination=destination,
        transport=transport,
        tlvs=tlvs,
    )


def _parse_tlvs(data: bytes) -> tuple[tuple[int, bytes], ...] | str:
    tlvs: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 3:
            return f"truncated TLV: {len(data) - offset} bytes left, a TLV needs 3"
        kind, length = struct.unpack_from("!BH", data, offset)
        offset += 3
        if len(data) - offset < length:
            return f"TLV {kind:#04x} announces {length} bytes, {len(data) - offset} left"
        tlvs.append((kind, data[offset : offset + length]))
        offset += length
    return tuple(tlvs)


# -- writing (for tests, clients behind no balancer, and tools) --------------------


_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address_pair(
    source: tuple[str, int], destination: tuple[str, int]
) -> tuple[_IPAddress, _IPAddress]:
    """Both addresses parsed, or a :class:`ConfigurationError` naming what is wrong."""
    parsed: list[_IPAddress] = []
    for what, (host, port) in (("source", source), ("destination", destination)):
        try:
            parsed.append(ipaddress.ip_address(host))
        except ValueError:
            raise ConfigurationError(f"{what} must be an IP address, not {host!r}") from None
        if not isinstance(port, int) or not 0 <= port <= 0xFFFF:
            raise ConfigurationError(f"{what} port must be in 0..65535, not {port!r}")
    src, dst = parsed
    if src.version != dst.version:
        raise ConfigurationError("source and destination must both be IPv4 or both IPv6")
    return src, dst


def encode_v1(source: tuple[str, int] | None, destination: tuple[str, int] | None) -> bytes:
    """A version 1 header line; ``None`` addresses give ``PROXY UNKNOWN``.

    Addresses that are not IPs, ports out of range and mixed families raise
    :class:`~asyncnet.errors.ConfigurationError`.
    """
    if source is None or destination is None:
        return b"PROXY UNKNOWN\r\n"
    src, dst = _address_pair(source, destination)
    family = "TCP4" if src.version == 4 else "TCP6"
    return f"PROXY {family} {src} {dst} {source[1]} {destination[1]}\r\n".encode("ascii")


def encode_v2(
    source: tuple[str, int] | None,
    destination: tuple[str, int] | None,
    *,
    command: str = "PROXY",
    tlvs: tuple[tuple[int, bytes], ...] = (),
) -> bytes:
    """A version 2 header for a TCP connection (``None`` addresses: family UNSPEC).

    Bad addresses (as for :func:`encode_v1`), a ``command`` other than ``"PROXY"`` or
    ``"LOCAL"`` and a TLV that does not fit its fields raise
    :class:`~asyncnet.errors.ConfigurationError`.
    """
    command_code = {"LOCAL": 0x0, "PROXY": 0x1}.get(command)
    if command_code is None:
        raise ConfigurationError(f"command must be 'PROXY' or 'LOCAL', not {command!r}")
    for kind, value in tlvs:
        if not 0 <= kind <= 0xFF or len(value) > 0xFFFF:
            raise ConfigurationError(f"TLV type {kind!r} with {len(value)} bytes does not fit")
    if source is None or destination is None:
        family_code, addresses = 0x00, b""
    else:
        src, dst = _address_pair(source, destination)
        family_code = 0x11 if src.version == 4 else 0x21
        addresses = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    extra = b"".join(struct.pack("!BH", kind, len(value)) + value for kind, value in tlvs)
    body = addresses + extra
    if len(body) > 0xFFFF:
        raise ConfigurationError(f"a v2 header holds at most 65535 bytes, not {len(body)}")
    return _V2_PREAMBLE.pack(V2_SIGNATURE, 0x20 | command_code, family_code, len(body)) + body
