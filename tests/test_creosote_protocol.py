"""The sans-IO creosote wire format: chunking, headers, reassembly, safe text.

No sockets and no event loop: datagrams are byte strings handed to a Reassembler,
in order, shuffled, duplicated or with some missing (hypothesis picks).
"""

from __future__ import annotations

import struct
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncnet.creosote._protocol import (
    CUT_MARKER,
    DEFAULT_BUFSIZE,
    HEADER_SIZE,
    MAGIC,
    MAX_DATAGRAM,
    TRUNCATION_MARKER,
    Header,
    Message,
    Reassembler,
    chunk_framed,
    chunk_raw,
    decode_header,
    encode_header,
    prepare,
    safe_text,
)
from asyncnet.errors import ConfigurationError

SENDER = ("127.0.0.1", 40000)
OTHER = ("127.0.0.1", 40001)


def feed_all(
    reassembler: Reassembler, datagrams: list[bytes], sender: object = SENDER, now: float = 0.0
) -> list[Message]:
    out: list[Message] = []
    for datagram in datagrams:
        out.extend(reassembler.feed(datagram, sender, now))
    return out


# -- chunking ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "chunks"),
    [
        (1, 1),
        (DEFAULT_BUFSIZE - 1, 1),
        (DEFAULT_BUFSIZE, 1),
        (DEFAULT_BUFSIZE + 1, 2),
        (1024 * 1024, 1024),
    ],
)
def test_raw_chunks_are_the_tutorials_slices(size: int, chunks: int) -> None:
    data = bytes(i % 251 for i in range(size))
    datagrams = chunk_raw(data)
    assert len(datagrams) == chunks
    assert all(len(d) <= DEFAULT_BUFSIZE for d in datagrams)
    assert b"".join(datagrams) == data


def test_raw_empty_message_sends_nothing_like_while_msg() -> None:
    assert chunk_raw(b"") == []


@pytest.mark.parametrize("size", [0, 1, DEFAULT_BUFSIZE - 1, DEFAULT_BUFSIZE, DEFAULT_BUFSIZE + 1])
def test_framed_datagrams_never_exceed_bufsize(size: int) -> None:
    data = b"m" * size
    datagrams = chunk_framed(data, 7)
    step = DEFAULT_BUFSIZE - HEADER_SIZE
    assert len(datagrams) == max(1, -(-size // step))
    assert all(len(d) <= DEFAULT_BUFSIZE for d in datagrams)
    assert all(d.startswith(MAGIC) for d in datagrams)
    assert b"".join(d[HEADER_SIZE:] for d in datagrams) == data


def test_header_layout_is_the_documented_one() -> None:
    datagram = chunk_framed(b"abc", 0x01020304, truncated=True)[0]
    assert datagram == b"\x00MrC" + bytes([1, 1]) + struct.pack("!III", 0x01020304, 0, 1) + b"abc"
    header = decode_header(datagram)
    assert header == Header(0x01020304, 0, 1, flags=1)
    assert isinstance(header, Header)
    assert header.truncated
    assert encode_header(Header(0x01020304, 0, 1, flags=1)) == datagram[:HEADER_SIZE]


@pytest.mark.parametrize(
    ("bufsize", "framed"), [(0, False), (MAX_DATAGRAM + 1, False), (HEADER_SIZE, True)]
)
def test_impossible_bufsize_is_refused(bufsize: int, framed: bool) -> None:
    with pytest.raises(ConfigurationError, match="bufsize"):
        if framed:
            chunk_framed(b"x", 1, bufsize)
        else:
            chunk_raw(b"x", bufsize)


def test_prepare_truncates_with_an_explicit_marker() -> None:
    """C3: an oversized message is cut to the limit and says so."""
    data, truncated = prepare("x" * 70_000, 8192)
    assert truncated
    assert len(data) == 8192
    assert data.endswith(TRUNCATION_MARKER)
    assert prepare("short", 8192) == (b"short", False)
    assert prepare("caf\u00e9 \udcff", 100) == (b"caf\xc3\xa9 \\udcff", False)


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (MAGIC + b"\x01", "short header (5 of 18 bytes)"),
        (MAGIC + bytes([2, 0]) + struct.pack("!III", 1, 0, 1), "unknown version 2"),
        (MAGIC + bytes([1, 0]) + struct.pack("!III", 1, 0, 0), "chunk count 0"),
        (MAGIC + bytes([1, 0]) + struct.pack("!III", 1, 5, 5), "chunk index 5 >= count 5"),
    ],
)
def test_malformed_frames_are_shown_raw_and_counted(datagram: bytes, reason: str) -> None:
    assert decode_header(datagram) == reason
    reassembler = Reassembler()
    [message] = reassembler.feed(datagram, SENDER, 1.0)
    assert message.data == datagram
    assert message.malformed == reason
    assert not message.framed
    assert reassembler.stats.malformed == 1


def test_text_that_does_not_start_with_the_magic_is_raw() -> None:
    assert decode_header(b"MrC hello") is None
    [message] = Reassembler().feed(b"plain text", SENDER, 2.5)
    assert (message.data, message.sender, message.time, message.framed) == (
        b"plain text",
        SENDER,
        2.5,
        False,
    )


# -- reassembly ----------------------------------------------------------------------------


def test_reassembles_in_order_and_reports_order() -> None:
    data = bytes(range(256)) * 20
    datagrams = chunk_framed(data, 42, 100)
    reassembler = Reassembler()
    [message] = feed_all(reassembler, datagrams)
    assert message.data == data
    assert message.complete
    assert message.framed
    assert not message.out_of_order
    assert (message.message_id, message.chunks) == (42, len(datagrams))
    assert reassembler.partial_messages == 0
    assert reassembler.partial_bytes == 0

    [backwards] = feed_all(reassembler, chunk_framed(data, 43, 100)[::-1])
    assert backwards.data == data
    assert backwards.out_of_order
    assert reassembler.stats.out_of_order == 1


def test_interleaved_senders_and_ids_are_kept_apart() -> None:
    """Two senders using the same message id, chunks interleaved: two intact messages."""
    a = chunk_framed(b"A" * 500, 1, 100)
    b = chunk_framed(b"B" * 500, 1, 100)
    reassembler = Reassembler()
    out: list[Message] = []
    for x, y in zip(a, b, strict=True):
        out += reassembler.feed(x, SENDER, 0.0)
        out += reassembler.feed(y, OTHER, 0.0)
    assert {(m.sender, m.data) for m in out} == {(SENDER, b"A" * 500), (OTHER, b"B" * 500)}


def test_duplicates_are_ignored_and_counted() -> None:
    datagrams = chunk_framed(b"d" * 300, 9, 100)
    reassembler = Reassembler()
    out = feed_all(reassembler, [datagrams[0], datagrams[0], *datagrams[1:]])
    assert [m.data for m in out] == [b"d" * 300]
    assert reassembler.stats.duplicates == 1
    # a late copy after delivery is a duplicate too, not the start of a new message
    single = chunk_framed(b"one", 10)
    assert len(feed_all(reassembler, single + single + datagrams[1:2])) == 1
    assert reassembler.stats.duplicates == 3
    assert reassembler.partial_messages == 0


def test_lost_chunk_is_reported_when_the_message_expires() -> None:
    datagrams = chunk_framed(b"0123456789" * 50, 5, 100)  # 7 chunks
    reassembler = Reassembler(expiry=2.0)
    assert feed_all(reassembler, datagrams[:2] + datagrams[3:5], now=10.0) == []
    assert reassembler.expire(11.9) == []
    [message] = reassembler.expire(12.0)
    assert not message.complete
    assert message.lost == 3
    assert message.missing == (2, 5, 6)
    assert message.reason == "expired"
    assert message.data == b"".join(d[HEADER_SIZE:] for d in datagrams[:2] + datagrams[3:5])
    assert reassembler.stats.incomplete == 1
    assert reassembler.stats.chunks_lost == 3
    assert reassembler.partial_messages == 0
    assert reassembler.partial_bytes == 0


def test_expiry_is_checked_on_every_feed_too() -> None:
    reassembler = Reassembler(expiry=1.0)
    reassembler.feed(chunk_framed(b"x" * 300, 1, 100)[0], SENDER, 0.0)
    out = reassembler.feed(b"later", SENDER, 5.0)
    assert [(m.reason, m.data) for m in out] == [("expired", b"x" * 82), (None, b"later")]


def test_partials_are_bounded_in_count_and_bytes() -> None:
    reassembler = Reassembler(max_partials=3, max_partial_bytes=10_000)
    given_up: list[Message] = []
    for message_id in range(10):
        first = chunk_framed(b"p" * 1000, message_id, 200)[0]
        given_up += reassembler.feed(first, SENDER, float(message_id))
        assert reassembler.partial_messages <= 3
    assert [m.message_id for m in given_up] == list(range(7))  # oldest first
    assert all(m.reason == "evicted" and m.lost == 5 for m in given_up)

    small = Reassembler(max_partial_bytes=1000)
    for message_id in range(10):
        small.feed(chunk_framed(b"q" * 3000, message_id, 500)[0], SENDER, 0.0)
        assert small.partial_bytes <= 1000


def test_a_message_over_the_size_limit_is_cut_not_buffered() -> None:
    """Cut at the limit with a marker; the rest is dropped, once."""
    reassembler = Reassembler(max_message_size=1000)
    out = feed_all(reassembler, chunk_framed(b"z" * 5000, 3, 300))
    [cut] = out  # one message, not one per later chunk
    assert cut.reason == "too large"
    assert cut.data == b"z" * (1000 - len(CUT_MARKER)) + CUT_MARKER
    assert not cut.complete
    assert reassembler.partial_bytes == 0
    assert reassembler.stats.cut == 1
    assert reassembler.stats.chunks_dropped == 18 - 4  # 282-byte chunks: the 4th passed 1000


def test_huge_claimed_count_costs_nothing() -> None:
    """A forged header claiming 4 billion chunks: memory and the missing list stay small."""
    forged = encode_header(Header(1, 0, 0xFFFFFFFF)) + b"tiny"
    reassembler = Reassembler(expiry=1.0)
    assert reassembler.feed(forged, SENDER, 0.0) == []
    [message] = reassembler.expire(1.0)
    assert message.lost == 0xFFFFFFFF - 1
    assert message.missing == tuple(range(1, 17))


def test_inconsistent_count_is_malformed() -> None:
    reassembler = Reassembler()
    reassembler.feed(encode_header(Header(1, 0, 3)) + b"a", SENDER, 0.0)
    [message] = reassembler.feed(encode_header(Header(1, 1, 4)) + b"b", SENDER, 0.0)
    assert message.malformed is not None
    assert "disagrees" in message.malformed


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=3000),
    bufsize=st.integers(HEADER_SIZE + 1, 400),
    order=st.randoms(use_true_random=False),
    duplicates=st.lists(st.integers(0, 10_000), max_size=5),
)
def test_any_order_with_duplicates_reassembles_exactly(
    data: bytes, bufsize: int, order: object, duplicates: list[int]
) -> None:
    datagrams = chunk_framed(data, 77, bufsize)
    shuffled = list(datagrams) + [datagrams[i % len(datagrams)] for i in duplicates]
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    reassembler = Reassembler()
    out = feed_all(reassembler, shuffled)
    assert [m.data for m in out] == [data]
    assert out[0].complete
    assert reassembler.partial_messages == 0


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=2000),
    bufsize=st.integers(HEADER_SIZE + 1, 300),
    keep=st.lists(st.booleans(), min_size=1, max_size=200),
)
def test_any_loss_is_reported_exactly(data: bytes, bufsize: int, keep: list[bool]) -> None:
    datagrams = chunk_framed(data, 1, bufsize)
    kept = [i for i in range(len(datagrams)) if keep[i % len(keep)]]
    reassembler = Reassembler(expiry=1.0)
    out = feed_all(reassembler, [datagrams[i] for i in kept]) + reassembler.expire(5.0)
    lost = len(datagrams) - len(kept)
    if not kept:
        assert out == []
    else:
        [message] = out
        assert message.lost == lost
        assert message.missing == tuple(i for i in range(len(datagrams)) if i not in kept)[:16]
        assert message.data == b"".join(datagrams[i][HEADER_SIZE:] for i in kept)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=100), max_size=50))
def test_garbage_never_raises_and_never_grows_memory(datagrams: list[bytes]) -> None:
    """U1-style: arbitrary datagrams (many starting with the magic) are always handled."""
    reassembler = Reassembler(max_partials=4, max_partial_bytes=500)
    for i, datagram in enumerate(datagrams):
        for candidate in (datagram, MAGIC + datagram, MAGIC + b"\x01\x00" + datagram):
            for message in reassembler.feed(candidate, SENDER, float(i)):
                assert isinstance(message.text, str)
        assert reassembler.partial_messages <= 4
        assert reassembler.partial_bytes <= 500 + 100


# -- safe text (C3) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (b"hello, world", "hello, world"),
        (b"\x1b[2J clear screen", "\\x1b[2J clear screen"),
        (b"nul\x00byte", "nul\\x00byte"),
        (b"two\nlines\r\n", "two\\nlines\\r\\n"),
        (b"\xff\xfe not utf-8", "\\xff\\xfe not utf-8"),
        ("caf\u00e9 \u2603".encode(), "caf\u00e9 \u2603"),
        ("bidi \u202e override".encode(), "bidi \\u202e override"),
        (b"back\\slash \\x41", "back\\\\slash \\\\x41"),
    ],
)
def test_safe_text_escapes_what_a_terminal_would_obey(data: bytes, shown: str) -> None:
    """C3: control bytes, ANSI escapes, NUL and invalid UTF-8 are shown escaped."""
    assert safe_text(data) == shown


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_safe_text_is_always_printable(data: bytes) -> None:
    """C3: whatever arrives, the printed form has no control or format character."""
    text = safe_text(data)
    assert text.isprintable()
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=50), st.binary(max_size=50))
def test_safe_text_tells_different_messages_apart(a: bytes, b: bytes) -> None:
    """Escaping is unambiguous: a literal backslash never looks like an escaped byte."""
    if a != b:
        assert safe_text(a) != safe_text(b)
