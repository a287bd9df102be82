"""Network byte order and address conversions: thin, checked wrappers over the stdlib.

The tutorial's "presentation layer" slide: integers travel big-endian ("network
order") whatever the CPU's own order, and IP addresses travel as 4 or 16 raw
bytes.  Everything here is one call into :mod:`struct`, :mod:`socket` or
:mod:`ipaddress`; what this module adds is a clear
:class:`~asyncnet.errors.ConfigurationError` (a ``ValueError``) for input the
call would reject cryptically -- or, worse, accept:

* ``struct.pack("!H", 70000)`` raises ``struct.error: 'H' format requires ...``;
  :func:`pack_u16` says which value did not fit in 16 bits.
* ``socket.inet_aton("127.1")`` returns ``b"\\x7f\\x00\\x00\\x01"`` and
  ``inet_aton("1")`` returns ``b"\\x00\\x00\\x00\\x01"`` (BSD shorthand);
  :func:`ipv4_to_bytes` accepts only the four-part dotted quad.

=======================  ==================================================
``pack_u16(n)``          ``struct.pack("!H", n)``: 2 bytes, network order
``pack_u32(n)``          ``struct.pack("!I", n)``: 4 bytes, network order
``unpack_u16(b)``        ``struct.unpack("!H", b)[0]``
``unpack_u32(b)``        ``struct.unpack("!I", b)[0]``
``ipv4_to_bytes(s)``     ``inet_aton``, strict dotted quad
``ipv4_from_bytes(b)``   ``inet_ntoa``
``ip_to_bytes(s)``       ``inet_pton`` for IPv4 or IPv6 (chosen by the text)
``ip_from_bytes(b)``     ``inet_ntop`` (4 bytes: IPv4, 16 bytes: IPv6)
=======================  ==================================================

``socket.htons``/``htonl`` and ``ntohs``/``ntohl`` convert an integer between
host and network order *as an integer*; they are what the C API has, and
:func:`host_is_network_order` tells whether they do anything on this machine.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys

from .errors import ConfigurationError

__all__ = [
    "host_is_network_order",
    "ip_from_bytes",
    "ip_to_bytes",
    "ipv4_from_bytes",
    "ipv4_to_bytes",
    "pack_u16",
    "pack_u32",
    "unpack_u16",
    "unpack_u32",
]

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


def host_is_network_order() -> bool:
    """True on a big-endian machine, where ``htonl`` and friends change nothing."""
    return sys.byteorder == "big"


def _check_int(value: int, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"expected an int, got {type(value).__name__}: {value!r}")
    if not 0 <= value < 1 << bits:
        raise ConfigurationError(
            f"{value} does not fit in an unsigned {bits}-bit field (0..{(1 << bits) - 1})"
        )
    return value


def _check_bytes(data: bytes | bytearray | memoryview, size: int, what: str) -> bytes:
    raw = bytes(data)
    if len(raw) != size:
        raise ConfigurationError(f"{what} is {size} bytes, got {len(raw)}: {raw!r}")
    return raw


def pack_u16(value: int) -> bytes:
    """``value`` (0..65535) as 2 bytes in network order."""
    return _U16.pack(_check_int(value, 16))


def pack_u32(value: int) -> bytes:
    """``value`` (0..4294967295) as 4 bytes in network order."""
    return _U32.pack(_check_int(value, 32))


def unpack_u16(data: bytes | bytearray | memoryview) -> int:
    """The unsigned 16-bit integer in exactly 2 network-order bytes."""
    value: int = _U16.unpack(_check_bytes(data, 2, "a 16-bit value"))[0]
    return value


def unpack_u32(data: bytes | bytearray | memoryview) -> int:
    """The unsigned 32-bit integer in exactly 4 network-order bytes."""
    value: int = _U32.unpack(_check_bytes(data, 4, "a 32-bit value"))[0]
    return value


def ipv4_to_bytes(address: str) -> bytes:
    """``socket.inet_aton`` for a strict dotted quad (``"127.1"`` is refused)."""
    try:
        ipaddress.IPv4Address(address)
    except ValueError as exc:
        raise ConfigurationError(f"{address!r} is not a dotted-quad IPv4 address ({exc})") from None
    return socket.inet_aton(address)


def ipv4_from_bytes(data: bytes | bytearray | memoryview) -> str:
    """``socket.inet_ntoa``: 4 bytes to a dotted quad."""
    return socket.inet_ntoa(_check_bytes(data, 4, "an IPv4 address"))


def ip_to_bytes(address: str) -> bytes:
    """``socket.inet_pton``: an IPv4 (4 bytes) or IPv6 (16 bytes) address in binary."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    try:
        return socket.inet_pton(family, address)
    except OSError as exc:  # e.g. an IPv6 zone ("fe80::1%eth0") has no binary form
        raise ConfigurationError(f"{address!r} has no {len(ip.packed)}-byte form: {exc}") from None


def ip_from_bytes(data: bytes | bytearray | memoryview) -> str:
    """``socket.inet_ntop``: 4 bytes give IPv4, 16 bytes IPv6 (in its shortest form)."""
    raw = bytes(data)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if len(raw) == 16:
        return socket.inet_ntop(socket.AF_INET6, raw)
    raise ConfigurationError(f"an IP address is 4 or 16 bytes, got {len(raw)}: {raw!r}")
