"""Tests for asyncnet.protocols._proxy: the sans-IO PROXY protocol v1/v2 parser.

No sockets: the parser is fed byte strings whole, byte by byte, and split anywhere.
"""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncnet.errors import PeerProtocolError
from asyncnet.protocols._proxy import (
    NEED_DATA,
    TLV,
    V1_MAX_LENGTH,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    ProxyHeaderParser,
    encode_v1,
    encode_v2,
)

V1_TCP4 = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 443\r\n"
V1_TCP6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n"
V2_TCP4 = encode_v2(("192.0.2.7", 40000), ("198.51.100.1", 443))
V2_TCP6_TLVS = encode_v2(
    ("2001:db8::7", 40000),
    ("2001:db8::1", 443),
    tlvs=((TLV.AUTHORITY, b"example.com"), (TLV.UNIQUE_ID, b"\x01\x02"), (0xE0, b"")),
)


def parse_whole(data: bytes, **kw: int) -> tuple[ProxyHeader, bytes]:
    parser = ProxyHeaderParser(**kw)
    header = parser.feed(data)
    assert isinstance(header, ProxyHeader)
    return header, parser.rest


def parse_bytewise(data: bytes, **kw: int) -> tuple[ProxyHeader | None, bytes]:
    parser = ProxyHeaderParser(**kw)
    header = None
    for i in range(len(data)):
        result = parser.feed(data[i : i + 1])
        if result is not NEED_DATA:
            assert isinstance(result, ProxyHeader)
            header = result
    return header, parser.rest


# -- well-formed headers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "family", "source", "destination"),
    [
        (V1_TCP4, "TCP4", ("192.0.2.7", 40000), ("198.51.100.1", 443)),
        (V1_TCP6, "TCP6", ("2001:db8::7", 40000), ("2001:db8::1", 443)),
        (V2_TCP4, "TCP4", ("192.0.2.7", 40000), ("198.51.100.1", 443)),
        (V2_TCP6_TLVS, "TCP6", ("2001:db8::7", 40000), ("2001:db8::1", 443)),
    ],
)
@pytest.mark.parametrize("feed", [parse_whole, parse_bytewise])
def test_tcp_headers_whole_and_byte_by_byte(wire, family, source, destination, feed) -> None:
    header, rest = feed(wire + b"hello\n")
    assert header is not None
    assert (header.family, header.source, header.destination) == (family, source, destination)
    assert header.command == "PROXY"
    assert header.is_proxied
    assert header.version == (1 if wire.startswith(b"PROXY") else 2)
    assert rest == b"hello\n"


def test_v2_tlvs_are_kept_in_order() -> None:
    header, _ = parse_whole(V2_TCP6_TLVS)
    assert header.tlvs == (
        (TLV.AUTHORITY, b"example.com"),
        (TLV.UNIQUE_ID, b"\x01\x02"),
        (0xE0, b""),
    )
    assert header.tlv(TLV.AUTHORITY) == b"example.com"
    assert header.tlv(TLV.ALPN) is None


def test_v1_unknown_ignores_the_rest_of_the_line() -> None:
    for wire in (b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"):
        header, rest = parse_whole(wire + b"x")
        assert (header.family, header.source, header.is_proxied) == ("UNKNOWN", None, False)
        assert rest == b"x"


def test_v2_local_and_unspec_have_no_addresses() -> None:
    """LOCAL (a balancer's own health check): the address block is ignored."""
    local = encode_v2(("192.0.2.7", 1), ("192.0.2.8", 2), command="LOCAL")
    header, rest = parse_whole(local + b"z")
    assert (header.command, header.family, header.source, header.is_proxied) == (
        "LOCAL",
        "UNKNOWN",
        None,
        False,
    )
    assert rest == b"z"
    header, _ = parse_whole(encode_v2(None, None))
    assert (header.command, header.family, header.source) == ("PROXY", "UNKNOWN", None)


def test_v2_unix_addresses() -> None:
    body = b"/run/client".ljust(108, b"\0") + b"/run/server".ljust(108, b"\0")
    wire = V2_SIGNATURE + struct.pack("!BBH", 0x21, 0x31, len(body)) + body
    header, _ = parse_whole(wire)
    assert (header.family, header.source, header.destination) == (
        "UNIX",
        "/run/client",
        "/run/server",
    )


def test_v1_line_of_107_bytes_is_accepted_108_refused() -> None:
    """The longest legal line is UNKNOWN followed by two full IPv6 addresses and ports."""
    full = b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    line = b"PROXY TCP6 " + full + b" " + full + b" 65535 65535"
    header, _ = parse_bytewise(line + b"\r\n")
    assert header is not None
    assert header.source == ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535)
    longest = line.replace(b"TCP6", b"UNKNOWN") + b"\r\n"
    assert len(longest) == V1_MAX_LENGTH
    header, _ = parse_bytewise(longest)
    assert header is not None
    assert header.family == "UNKNOWN"
    with pytest.raises(ProxyHeaderError, match="longer than 107"):
        parse_bytewise(longest.replace(b"UNKNOWN", b"UNKNOWN "))


def test_bytes_fed_after_the_header_go_to_rest() -> None:
    parser = ProxyHeaderParser()
    assert parser.feed(V1_TCP4[:10]) is NEED_DATA
    assert isinstance(parser.feed(V1_TCP4[10:] + b"a"), ProxyHeader)
    parser.feed(b"b")
    assert parser.rest == b"ab"


# -- malformed, truncated, oversized --------------------------------------------------

BAD_V1 = [
    (b"GET / HTTP/1.1\r\n", "does not start"),
    (b"PROXZ TCP4", "does not start"),
    (b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 443\n", "LF, not CRLF"),
    (b"PROXY UDP4 192.0.2.7 198.51.100.1 40000 443\r\n", "not TCP4"),
    (b"PROXY TCP4 192.0.2.7 198.51.100.1 40000\r\n", "exactly"),
    (b"PROXY TCP4 192.0.2.7  198.51.100.1 40000 443\r\n", "exactly"),
    (b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 443 \r\n", "exactly"),
    (b"PROXY TCP4 2001:db8::7 198.51.100.1 40000 443\r\n", "not an TCP4 address"),
    (b"PROXY TCP6 192.0.2.7 2001:db8::1 40000 443\r\n", "not an TCP6 address"),
    (b"PROXY TCP4 192.0.2.300 198.51.100.1 40000 443\r\n", "not an IP address"),
    (b"PROXY TCP4 example.org 198.51.100.1 40000 443\r\n", "not an IP address"),
    (b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 443\r\n", "above 65535"),
    (b"PROXY TCP4 192.0.2.7 198.51.100.1 -1 443\r\n", "not a decimal"),
    (b"PROXY TCP4 192.0.2.7 198.51.100.1 0443 443\r\n", "not a decimal"),
    (b"PROXY TCP4 192.0.2.7 198.51.100.1 4\xd9\xa3 443\r\n", "not a decimal"),
    (b"PROXY\r\n", "does not start"),
    (b"PROXY \r\n", "not TCP4"),
    (b"PROXY " + b"A" * 200, "longer than 107"),
]


@pytest.mark.parametrize(("wire", "reason"), BAD_V1)
@pytest.mark.parametrize("feed", [parse_whole, parse_bytewise])
def test_malformed_v1_is_refused(wire: bytes, reason: str, feed) -> None:
    with pytest.raises(ProxyHeaderError, match=reason) as info:
        feed(wire)
    assert isinstance(info.value, PeerProtocolError)


def _v2(version_command: int = 0x21, family: int = 0x11, body: bytes = b"") -> bytes:
    return V2_SIGNATURE + struct.pack("!BBH", version_command, family, len(body)) + body


ADDR4 = bytes(12)
BAD_V2 = [
    (_v2(0x11, 0x11, ADDR4), "version 1"),
    (_v2(0x22, 0x11, ADDR4), "unknown version 2 command"),
    (_v2(0x21, 0x41, ADDR4), "family/protocol"),
    (_v2(0x21, 0x13, ADDR4), "family/protocol"),
    (_v2(0x21, 0x11, bytes(11)), "addresses need 12"),
    (_v2(0x21, 0x21, bytes(12)), "addresses need 36"),
    (_v2(0x21, 0x11, ADDR4 + b"\x05\x00"), "truncated TLV"),
    (_v2(0x21, 0x11, ADDR4 + b"\x05\x00\x09abc"), "announces 9 bytes"),
    (V2_SIGNATURE[:5] + b"X", "does not start"),
]


@pytest.mark.parametrize(("wire", "reason"), BAD_V2)
@pytest.mark.parametrize("feed", [parse_whole, parse_bytewise])
def test_malformed_v2_is_refused(wire: bytes, reason: str, feed) -> None:
    with pytest.raises(ProxyHeaderError, match=reason):
        feed(wire)


def test_oversized_v2_is_refused_before_the_body_arrives() -> None:
    parser = ProxyHeaderParser(max_v2_length=64)
    with pytest.raises(ProxyHeaderError, match=r"announces 65535 bytes \(limit 64\)"):
        parser.feed(_v2(0x21, 0x11)[:14] + b"\xff\xff")
    assert parser.buffered == 0


def test_v2_at_the_length_limit_is_accepted() -> None:
    tlv = (0xE1, bytes(64 - 12 - 3))
    wire = encode_v2(("192.0.2.1", 1), ("192.0.2.2", 2), tlvs=(tlv,))
    header, _ = parse_whole(wire, max_v2_length=64)
    assert header.tlvs == (tlv,)


@pytest.mark.parametrize("wire", [V1_TCP4, V2_TCP6_TLVS])
def test_truncated_header_raises_at_eof(wire: bytes) -> None:
    for cut in range(len(wire)):
        parser = ProxyHeaderParser()
        assert parser.feed(wire[:cut]) is NEED_DATA
        with pytest.raises(ProxyHeaderError, match=f"closed after {cut} bytes"):
            parser.feed_eof()


def test_error_is_sticky() -> None:
    parser = ProxyHeaderParser(peer=("127.0.0.1", 5))
    with pytest.raises(ProxyHeaderError, match=r"from 127\.0\.0\.1:5") as first:
        parser.feed(b"HELO")
    with pytest.raises(ProxyHeaderError) as again:
        parser.feed(V1_TCP4)
    assert again.value is first.value
    with pytest.raises(ProxyHeaderError):
        parser.feed_eof()


def test_complete_header_then_eof_is_fine() -> None:
    parser = ProxyHeaderParser()
    parser.feed(V2_TCP4)
    parser.feed_eof()


def test_encoders_refuse_mixed_families() -> None:
    with pytest.raises(ValueError, match="both"):
        encode_v1(("192.0.2.1", 1), ("2001:db8::1", 2))
    with pytest.raises(ValueError, match="both"):
        encode_v2(("192.0.2.1", 1), ("2001:db8::1", 2))
    assert encode_v1(None, None) == b"PROXY UNKNOWN\r\n"


# -- any split gives the same result ---------------------------------------------------


def outcome(data: bytes, cuts: list[int]) -> tuple[object, ...]:
    """Feed ``data`` in pieces cut at ``cuts``; the header and rest, or the error reason."""
    parser = ProxyHeaderParser(max_v2_length=128)
    bounds = [0, *sorted(cuts), len(data)]
    try:
        for start, end in itertools.pairwise(bounds):
            parser.feed(data[start:end])
        parser.feed_eof()
    except ProxyHeaderError as exc:
        return ("error", exc.reason)
    return ("header", parser.header, parser.rest)


addresses4 = st.tuples(st.ip_addresses(v=4).map(str), st.integers(0, 65535))
addresses6 = st.tuples(st.ip_addresses(v=6).map(str), st.integers(0, 65535))
tlv_lists = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=20)), max_size=4).map(tuple)


@st.composite
def wires(draw: st.DrawFn) -> bytes:
    pick = draw(st.sampled_from(["v1-4", "v1-6", "v2-4", "v2-6", "junk"]))
    if pick == "junk":
        return draw(st.binary(max_size=80))
    pair = addresses4 if pick.endswith("4") else addresses6
    source, destination = draw(pair), draw(pair)
    if pick.startswith("v1"):
        wire = encode_v1(source, destination)
    else:
        wire = encode_v2(source, destination, tlvs=draw(tlv_lists))
    if draw(st.booleans()):  # damage one byte
        i = draw(st.integers(0, len(wire) - 1))
        wire = wire[:i] + bytes([draw(st.integers(0, 255))]) + wire[i + 1 :]
    if draw(st.booleans()):
        wire = wire[: draw(st.integers(0, len(wire)))]
    return wire + draw(st.binary(max_size=20))


@settings(deadline=None, max_examples=300)
@given(data=wires(), cuts=st.lists(st.integers(0, 200), max_size=10))
@pytest.mark.slow
def test_any_split_gives_the_same_result(data: bytes, cuts: list[int]) -> None:
    cuts = [c for c in cuts if c <= len(data)]
    assert outcome(data, cuts) == outcome(data, [])


@settings(deadline=None, max_examples=100)
@given(source=addresses6, destination=addresses6, tlvs=tlv_lists, tail=st.binary(max_size=30))
def test_v2_round_trip(source, destination, tlvs, tail) -> None:
    header, rest = parse_whole(encode_v2(source, destination, tlvs=tlvs) + tail, max_v2_length=512)
    assert (header.source, header.destination, header.tlvs, rest) == (
        source,
        destination,
        tlvs,
        tail,
    )
