"""The tutorial's network byte order slide: struct, htons/htonl, inet_aton/inet_ntoa.

    python -m asyncnet.demos.byteorder                   # the slide's examples
    python -m asyncnet.demos.byteorder 80 0xC000020A 2001:db8::1 192.0.2.10

Integers are packed as unsigned 16- and 32-bit network-order (big-endian) values;
addresses are converted to the raw bytes that travel in packets and back.
Nothing is sent anywhere.
"""

from __future__ import annotations

import argparse
import socket
import sys

from ..byteorder import (
    host_is_network_order,
    ip_from_bytes,
    ip_to_bytes,
    ipv4_from_bytes,
    ipv4_to_bytes,
    pack_u16,
    pack_u32,
    unpack_u16,
    unpack_u32,
)
from ..errors import ConfigurationError
from . import _cli as cli

EXAMPLES = ["80", "0x1234", "0x12345678", "192.0.2.10", "127.0.0.1", "::1", "2001:db8::1"]


def show_integer(value: int) -> None:
    """Print ``value`` in network order as 16 and 32 bits, and what htons/htonl make of it."""
    if value < 1 << 16:
        packed = pack_u16(value)
        print(
            f"{value:#x}: !H -> {packed.hex(' ')} -> {unpack_u16(packed)}; "
            f"htons = {socket.htons(value):#06x}"
        )
    packed = pack_u32(value)
    print(
        f"{value:#x}: !I -> {packed.hex(' ')} -> {unpack_u32(packed)}; "
        f"htonl = {socket.htonl(value):#010x}"
    )


def show_address(text: str) -> None:
    """Print an address as packed bytes (inet_aton / inet_pton) and back."""
    packed = ip_to_bytes(text)
    if len(packed) == 4:
        print(
            f"inet_aton({text!r}) -> {ipv4_to_bytes(text).hex(' ')} "
            f"-> inet_ntoa -> {ipv4_from_bytes(packed)!r}"
        )
    else:
        print(
            f"inet_pton(AF_INET6, {text!r}) -> {packed.hex(' ')} "
            f"-> inet_ntop -> {ip_from_bytes(packed)!r}"
        )


def main(argv: list[str] | None = None) -> int:
    """Show each integer or address given (default: the slide's examples)."""
    parser = cli.parser("python -m asyncnet.demos.byteorder", __doc__)
    parser.add_argument("values", nargs="*", metavar="INT_OR_ADDRESS", default=EXAMPLES)
    return cli.main(parser, show_all, argv)


def show_all(args: argparse.Namespace) -> int:
    """The body of main(): one line per value; 1 if any value was not understood."""
    effect = "change nothing" if host_is_network_order() else "swap the bytes"
    print(
        f"this machine is {sys.byteorder}-endian; network order is big-endian, "
        f"so htons/htonl {effect}",
        flush=True,
    )
    status = 0
    for value in args.values:
        try:
            show_address(value) if ":" in value or "." in value else show_integer(int(value, 0))
        except (ConfigurationError, ValueError) as exc:
            print(f"{value}: error: {exc}", file=sys.stderr, flush=True)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
