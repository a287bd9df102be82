"""asyncnet.byteorder: network-order packing and address conversions, and the demo."""

from __future__ import annotations

import ipaddress
import socket
import struct
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncnet.byteorder import (
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
from asyncnet.errors import ConfigurationError

from .helpers import ROOT


def test_network_order_is_big_endian() -> None:
    assert pack_u16(0x1234) == b"\x12\x34"
    assert pack_u32(0x12345678) == b"\x12\x34\x56\x78"
    assert unpack_u16(b"\x00\x50") == 80
    assert unpack_u32(bytearray(b"\xc0\xa8\x01\x0a")) == 0xC0A8010A
    assert host_is_network_order() == (sys.byteorder == "big")
    assert (socket.htons(0x1234) == 0x1234) == host_is_network_order()


@given(st.integers(0, 0xFFFF))
def test_u16_round_trip_matches_struct(value: int) -> None:
    assert pack_u16(value) == struct.pack("!H", value) == value.to_bytes(2, "big")
    assert unpack_u16(pack_u16(value)) == value


@given(st.integers(0, 0xFFFFFFFF))
def test_u32_round_trip_matches_struct(value: int) -> None:
    assert pack_u32(value) == struct.pack("!I", value)
    assert unpack_u32(memoryview(pack_u32(value))) == value
    assert socket.ntohl(socket.htonl(value)) == value


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: pack_u16(65536), "65536 does not fit in an unsigned 16-bit field (0..65535)"),
        (lambda: pack_u16(-1), "-1 does not fit in an unsigned 16-bit field"),
        (lambda: pack_u32(1 << 32), "does not fit in an unsigned 32-bit field"),
        (lambda: pack_u16(True), "expected an int, got bool"),
        (lambda: pack_u32("7"), "expected an int, got str"),  # type: ignore[arg-type]
        (lambda: unpack_u16(b"\x01"), "a 16-bit value is 2 bytes, got 1"),
        (lambda: unpack_u32(b"\x01\x02\x03\x04\x05"), "a 32-bit value is 4 bytes, got 5"),
        (
            lambda: ipv4_to_bytes("127.1"),
            "'127.1' is not a dotted-quad IPv4 address (Expected 4 octets in '127.1')",
        ),
        (lambda: ipv4_to_bytes("1"), "'1' is not a dotted-quad IPv4 address"),
        (lambda: ipv4_to_bytes("256.0.0.1"), "256"),
        (lambda: ipv4_from_bytes(b"\x7f\x00\x01"), "an IPv4 address is 4 bytes, got 3"),
        (lambda: ip_to_bytes("::1::"), "does not appear to be an IPv4 or IPv6 address"),
        (lambda: ip_to_bytes("fe80::1%eth0"), "has no 16-byte form"),
        (lambda: ip_from_bytes(b"\x00" * 5), "an IP address is 4 or 16 bytes, got 5"),
    ],
)
def test_bad_input_gets_a_clear_value_error(call: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()  # type: ignore[operator]
    with pytest.raises(ValueError):  # ConfigurationError is also a ValueError
        call()  # type: ignore[operator]


def test_strict_where_inet_aton_is_lenient() -> None:
    """inet_aton accepts the BSD shorthand "127.1"; ipv4_to_bytes does not."""
    assert socket.inet_aton("127.1") == b"\x7f\x00\x00\x01"
    with pytest.raises(ConfigurationError):
        ipv4_to_bytes("127.1")
    assert ipv4_to_bytes("127.0.0.1") == b"\x7f\x00\x00\x01"


@pytest.mark.parametrize(
    ("text", "packed"),
    [
        ("192.0.2.10", bytes([192, 0, 2, 10])),
        ("::1", bytes(15) + b"\x01"),
        ("2001:db8::1", bytes.fromhex("20010db8000000000000000000000001")),
        ("::ffff:127.0.0.1", bytes(10) + b"\xff\xff\x7f\x00\x00\x01"),
    ],
)
def test_inet_pton_and_ntop(text: str, packed: bytes) -> None:
    assert ip_to_bytes(text) == packed
    assert ip_from_bytes(packed) == text
    if len(packed) == 4:
        assert ipv4_to_bytes(text) == packed
        assert ipv4_from_bytes(packed) == text


def test_ipv6_comes_back_in_shortest_form() -> None:
    assert ip_from_bytes(ip_to_bytes("2001:0db8:0000:0000:0000:0000:0000:0001")) == "2001:db8::1"


@given(st.ip_addresses())
def test_any_address_round_trips(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    packed = ip_to_bytes(str(address))
    assert packed == address.packed
    # inet_ntop and ipaddress may spell an address differently (::ffff:0.0.0.0)
    assert ipaddress.ip_address(ip_from_bytes(packed)) == address


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncnet.demos.byteorder", *args],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=ROOT,
    )


def test_demo_shows_the_slide_examples() -> None:
    done = run_demo()
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"this machine is {sys.byteorder}-endian" in out
    assert "0x1234: !H -> 12 34 -> 4660" in out
    assert "0x12345678: !I -> 12 34 56 78 -> 305419896" in out
    assert "inet_aton('192.0.2.10') -> c0 00 02 0a -> inet_ntoa -> '192.0.2.10'" in out
    assert "inet_pton(AF_INET6, '::1') -> " + "00 " * 15 + "01 -> inet_ntop -> '::1'" in out


def test_demo_reports_each_bad_value_and_carries_on() -> None:
    done = run_demo("70000", "127.1", "0x50", "nonsense")
    assert done.returncode == 1
    assert "0x11170: !I -> 00 01 11 70 -> 70000" in done.stdout
    assert "0x50: !H -> 00 50 -> 80" in done.stdout
    errors = done.stderr.splitlines()
    assert errors[0] == "127.1: error: '127.1' does not appear to be an IPv4 or IPv6 address"
    assert errors[1].startswith("nonsense: error: ")
    assert len(errors) == 2
