"""Tests for asyncnet.protocols._framing: the sans-IO replacement for asynchat's set_terminator.

No sockets and no event loop: the framer is fed byte strings directly.
"""

from __future__ import annotations

import itertools
import struct
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncnet.errors import (
    ConfigurationError,
    FrameTooLarge,
    IncompleteFrame,
    LocalProtocolError,
    PeerProtocolError,
)
from asyncnet.protocols import (
    NEED_DATA,
    ByteCount,
    Delimiter,
    Framer,
    LengthPrefix,
    NeedData,
    Terminator,
)

CRLF = Delimiter(b"\r\n")
LF = Delimiter(b"\n")
PREFIX_FORMATS = ["!B", "!H", "!I", "!Q"]
PREFIX_SIZES = {"!B": 1, "!H": 2, "!I": 4, "!Q": 8}


def drain(framer: Framer) -> list[bytes]:
    """Every frame available now under the current terminator."""
    return list(framer.frames())


def feed_chunks(framer: Framer, chunks: list[bytes]) -> list[bytes]:
    """Feed chunks one by one, draining after each (the data_received pattern)."""
    out: list[bytes] = []
    for chunk in chunks:
        framer.feed(chunk)
        out.extend(drain(framer))
    return out


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """Split ``data`` at the given offsets (any order, duplicates allowed)."""
    points = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


# -- NEED_DATA -------------------------------------------------------------------------------


def test_need_data_sentinel() -> None:
    framer = Framer(LF)
    assert framer.next_frame() is NEED_DATA
    assert isinstance(NEED_DATA, NeedData)
    assert repr(NEED_DATA) == "NEED_DATA"
    framer.feed(b"\n")
    frame = framer.next_frame()
    assert frame == b""  # an empty frame is a frame, not NEED_DATA
    assert isinstance(frame, bytes)


# -- Delimiter -------------------------------------------------------------------------------


def test_delimiter_frames() -> None:
    framer = Framer(CRLF)
    framer.feed(b"HELO example.org\r\nMAIL FROM:<a@b>\r\npartial")
    assert framer.next_frame() == b"HELO example.org"
    assert framer.next_frame() == b"MAIL FROM:<a@b>"
    assert framer.next_frame() is NEED_DATA
    assert framer.buffered == len(b"partial")
    framer.feed(b" line\r\n")
    assert drain(framer) == [b"partial line"]
    assert framer.buffered == 0


def test_delimiter_frames_are_bytes() -> None:
    framer = Framer(LF)
    framer.feed(bytearray(b"abc\n"))
    framer.feed(memoryview(b"def\n"))
    frames = drain(framer)
    assert frames == [b"abc", b"def"]
    assert all(type(f) is bytes for f in frames)


def test_empty_delimited_frames() -> None:
    framer = Framer(LF)
    framer.feed(b"\n\na\n\n")
    assert drain(framer) == [b"", b"", b"a", b""]


def test_keep_delimiter() -> None:
    framer = Framer(CRLF, keep_delimiter=True)
    assert framer.keep_delimiter
    framer.feed(b"one\r\ntwo\r\nthr")
    assert drain(framer) == [b"one\r\n", b"two\r\n"]


def test_multibyte_delimiter_split_across_chunks() -> None:
    framer = Framer(Delimiter(b"\r\n\r\n"))
    assert feed_chunks(framer, [b"abc\r", b"\n\r", b"\n", b"def\r\n", b"\r\nghi"]) == [
        b"abc",
        b"def",
    ]
    assert framer.buffered == 3


def test_lone_cr_is_not_crlf() -> None:
    framer = Framer(CRLF)
    assert feed_chunks(framer, [b"a\rb\r", b"c\r", b"\n"]) == [b"a\rb\rc"]


def test_self_overlapping_delimiter_split_across_chunks() -> None:
    # b"aab" inside b"xaaab" starts at index 2: the search must resume early enough.
    framer = Framer(Delimiter(b"aab"))
    assert feed_chunks(framer, [b"xa", b"a", b"ab", b"aa", b"a", b"b"]) == [b"xa", b"a"]


def test_feed_byte_by_byte_equals_feed_whole() -> None:
    stream = b"GET / HTTP/1.0\r\nHost: x\r\n\r\n\r\nlast\r\ntail"
    whole = Framer(CRLF)
    whole.feed(stream)
    by_byte = Framer(CRLF)
    assert feed_chunks(by_byte, [stream[i : i + 1] for i in range(len(stream))]) == drain(whole)
    assert whole.buffered == by_byte.buffered == 4


# -- ByteCount -------------------------------------------------------------------------------


def test_byte_count_repeats_until_changed() -> None:
    framer = Framer(ByteCount(3))
    framer.feed(b"abcdefg")
    assert drain(framer) == [b"abc", b"def"]
    assert framer.buffered == 1
    framer.feed(b"hi")
    assert framer.next_frame() == b"ghi"
    assert framer.next_frame() is NEED_DATA


def test_byte_count_zero() -> None:
    framer = Framer(ByteCount(0))
    framer.feed(b"xy")
    assert framer.next_frame() == b""
    assert framer.next_frame() == b""  # consumes nothing, so always available
    # frames() must not loop forever on zero-byte frames.
    assert drain(framer) == [b""]
    assert framer.buffered == 2


def test_byte_count_zero_body_then_lines_inside_frames_loop() -> None:
    framer = Framer(CRLF)
    framer.feed(b"Content-Length: 0\r\n\r\nNEXT\r\n")
    seen: list[bytes] = []
    body_next = False
    for frame in framer.frames():
        seen.append(frame)
        if body_next:
            body_next = False
            framer.set_terminator(CRLF)
        elif frame == b"":
            body_next = True
            framer.set_terminator(ByteCount(0))
    assert seen == [b"Content-Length: 0", b"", b"", b"NEXT"]


# -- LengthPrefix ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", PREFIX_FORMATS)
def test_length_prefix(fmt: str) -> None:
    framer = Framer(LengthPrefix(fmt))
    stream = b"".join(struct.pack(fmt, len(p)) + p for p in [b"hello", b"", b"\x00\r\n"])
    framer.feed(stream + struct.pack(fmt, 4) + b"ab")
    assert drain(framer) == [b"hello", b"", b"\x00\r\n"]
    assert framer.buffered == PREFIX_SIZES[fmt] + 2
    framer.feed(b"cd")
    assert framer.next_frame() == b"abcd"


@pytest.mark.parametrize("fmt", PREFIX_FORMATS)
def test_length_prefix_header_split(fmt: str) -> None:
    data = struct.pack(fmt, 3) + b"xyz"
    framer = Framer(LengthPrefix(fmt))
    assert feed_chunks(framer, [data[i : i + 1] for i in range(len(data))]) == [b"xyz"]


def test_length_prefix_default_and_sizes() -> None:
    assert LengthPrefix().format == "!I"
    assert [LengthPrefix(f).prefix_size for f in PREFIX_FORMATS] == [1, 2, 4, 8]
    assert LengthPrefix("!B").max_length == 255
    assert LengthPrefix("!H").max_length == 65535


def test_length_prefix_is_network_byte_order() -> None:
    framer = Framer(LengthPrefix("!H"))
    framer.feed(b"\x00\x02ok")  # big-endian 2; little-endian would read 512
    assert framer.next_frame() == b"ok"


# -- Switching terminators -------------------------------------------------------------------

HTTPISH = (
    b"POST /x HTTP/1.1\r\nContent-Length: 12\r\n\r\nhello\r\nworld"
    b"GET /y HTTP/1.1\r\nHost: h\r\n\r\n"
)
HTTPISH_FRAMES = [
    b"POST /x HTTP/1.1",
    b"Content-Length: 12",
    b"",
    b"hello\r\nworld",
    b"GET /y HTTP/1.1",
    b"Host: h",
    b"",
]


def parse_httpish(chunks: list[bytes]) -> list[bytes]:
    """Header lines, then a Content-Length body by byte count, then lines again."""
    framer = Framer(CRLF, max_frame_size=1024)
    out: list[bytes] = []
    length = 0
    for chunk in chunks:
        framer.feed(chunk)
        while True:
            frame = framer.next_frame()
            if frame is NEED_DATA:
                break
            out.append(frame)
            if isinstance(framer.terminator, ByteCount):
                framer.set_terminator(CRLF)  # body done: back to lines
            elif frame.startswith(b"Content-Length:"):
                length = int(frame.split(b":")[1])
            elif frame == b"" and length:
                framer.set_terminator(ByteCount(length))
                length = 0
    assert framer.buffered == 0
    return out


def test_switch_lines_then_body_then_lines_single_feed() -> None:
    assert parse_httpish([HTTPISH]) == HTTPISH_FRAMES


def test_switch_lines_then_body_then_lines_byte_by_byte() -> None:
    chunks = [HTTPISH[i : i + 1] for i in range(len(HTTPISH))]
    assert parse_httpish(chunks) == HTTPISH_FRAMES


@given(cuts=st.lists(st.integers(min_value=0, max_value=len(HTTPISH)), max_size=12))
def test_switch_lines_then_body_any_split(cuts: list[int]) -> None:
    assert parse_httpish(split_at(HTTPISH, cuts)) == HTTPISH_FRAMES


def test_buffered_bytes_are_parsed_under_new_terminator() -> None:
    framer = Framer(LF)
    framer.feed(b"3\nabc\x00\x02hi")
    assert framer.next_frame() == b"3"
    framer.set_terminator(ByteCount(3))
    assert framer.next_frame() == b"abc"
    framer.set_terminator(LengthPrefix("!H"))
    assert framer.next_frame() == b"hi"
    assert framer.terminator == LengthPrefix("!H")


def test_switch_while_partial_frame_buffered() -> None:
    framer = Framer(LF)
    framer.feed(b"abcdef")  # no newline yet
    assert framer.next_frame() is NEED_DATA
    framer.set_terminator(ByteCount(4))
    assert framer.next_frame() == b"abcd"
    framer.set_terminator(LF)  # the search restarts at the new frame
    framer.feed(b"\n")
    assert framer.next_frame() == b"ef"


def test_switch_delimiter_while_partial_frame_buffered() -> None:
    framer = Framer(LF)
    framer.feed(b"a;b;c")  # searched for b"\n" to the end: not found
    assert framer.next_frame() is NEED_DATA
    framer.set_terminator(Delimiter(b";"))  # the new delimiter is searched from the start
    assert drain(framer) == [b"a", b"b"]


def test_asynchat_shorthand() -> None:
    framer = Framer(b"\r\n")
    assert framer.terminator == Delimiter(b"\r\n")
    framer.set_terminator(5)
    assert framer.terminator == ByteCount(5)  # type: ignore[comparison-overlap]
    framer.set_terminator(bytearray(b"\n"))  # type: ignore[arg-type]
    assert framer.terminator == Delimiter(b"\n")


# -- Validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: Delimiter(b""),
        lambda: Delimiter("\r\n"),  # type: ignore[arg-type]
        lambda: ByteCount(-1),
        lambda: ByteCount(True),
        lambda: ByteCount(2.0),  # type: ignore[arg-type]
        lambda: LengthPrefix("<I"),
        lambda: LengthPrefix(">I"),
        lambda: LengthPrefix("I"),
        lambda: LengthPrefix("!i"),
        lambda: LengthPrefix("!L"),
        lambda: Framer(LF, max_frame_size=0),
        lambda: Framer(LF, max_frame_size=-5),
        lambda: Framer(LF, max_frame_size=True),
        lambda: Framer(ByteCount(11), max_frame_size=10),
        lambda: Framer("\r\n"),  # type: ignore[arg-type]
        lambda: Framer(None),  # type: ignore[arg-type]
        lambda: Framer(True),
        lambda: Framer(-1),
    ],
)
def test_bad_configuration(make: object) -> None:
    with pytest.raises(ConfigurationError):
        make()  # type: ignore[operator]


def test_configuration_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        Delimiter(b"")


def test_byte_count_over_max_refused_at_set_time() -> None:
    framer = Framer(LF, max_frame_size=10)
    framer.set_terminator(ByteCount(10))
    with pytest.raises(ConfigurationError):
        framer.set_terminator(ByteCount(11))
    assert framer.terminator == ByteCount(10)  # unchanged after the refusal


def test_terminators_are_frozen_and_hashable() -> None:
    assert {Delimiter(b"\n"), Delimiter(b"\n"), ByteCount(1), LengthPrefix()} == {
        Delimiter(b"\n"),
        ByteCount(1),
        LengthPrefix("!I"),
    }
    with pytest.raises(AttributeError):
        ByteCount(1).size = 2  # type: ignore[misc]


# -- Encoding (the sending side) -------------------------------------------------------------


def test_encode() -> None:
    assert CRLF.encode(b"hi") == b"hi\r\n"
    assert ByteCount(2).encode(b"hi") == b"hi"
    assert LengthPrefix("!H").encode(b"hi") == b"\x00\x02hi"
    with pytest.raises(LocalProtocolError):
        CRLF.encode(b"a\r\nb")
    with pytest.raises(LocalProtocolError):
        # b"line\r\n" + b"\r\n\r\n": the receiver would stop after b"line".
        Delimiter(b"\r\n\r\n").encode(b"line\r\n")
    with pytest.raises(LocalProtocolError):
        Delimiter(b"aba").encode(b"xab")  # b"xababa": b"aba" first starts at index 1
    assert CRLF.encode(b"ends with CR\r") == b"ends with CR\r\r\n"  # fine: no early CRLF
    with pytest.raises(LocalProtocolError):
        ByteCount(2).encode(b"abc")
    with pytest.raises(LocalProtocolError):
        LengthPrefix("!B").encode(b"x" * 256)
    assert len(LengthPrefix("!B").encode(b"x" * 255)) == 256


# -- Limits (S1: over-long line, split-CRLF boundary) ----------------------------------------


def test_exact_max_delimited_frame_accepted() -> None:
    framer = Framer(CRLF, max_frame_size=1024)
    framer.feed(b"A" * 1024 + b"\r\n")
    assert framer.next_frame() == b"A" * 1024


def test_max_plus_one_delimited_frame_rejected() -> None:
    """S1: a complete line one byte over the limit is rejected, not returned."""
    framer = Framer(CRLF, max_frame_size=1024)
    with pytest.raises(FrameTooLarge) as info:
        framer.feed(b"A" * 1025 + b"\r\n")
    assert info.value.size == 1025
    assert info.value.limit == 1024


def test_max_plus_one_rejected_by_next_frame_when_behind_other_frames() -> None:
    """S1: an over-long line queued behind a good one is rejected when it is reached."""
    framer = Framer(LF, max_frame_size=8)
    framer.feed(b"ok\n" + b"B" * 9 + b"\n")
    assert framer.next_frame() == b"ok"
    with pytest.raises(FrameTooLarge):
        framer.next_frame()


def test_exact_max_with_delimiter_split_across_feeds() -> None:
    """S1: a max-size line whose CRLF is split (b"\\r" | b"\\n") is accepted.

    This is Twisted's test_maximumLineLengthPartialDelimiter.
    """
    framer = Framer(CRLF, max_frame_size=1024)
    framer.feed(b"A" * 1024 + b"\r")
    assert framer.next_frame() is NEED_DATA
    framer.feed(b"\n")
    assert framer.next_frame() == b"A" * 1024


def test_exact_max_with_long_delimiter_split_across_feeds() -> None:
    """S1: the split-delimiter allowance is len(delimiter) - 1 bytes."""
    framer = Framer(Delimiter(b"\r\n\r\n"), max_frame_size=16)
    framer.feed(b"A" * 16 + b"\r\n\r")  # max + len(delim) - 1 bytes, no delimiter: wait
    assert framer.next_frame() is NEED_DATA
    framer.feed(b"\n")
    assert framer.next_frame() == b"A" * 16


def test_unterminated_line_over_bound_rejected() -> None:
    """S1: max + len(delimiter) bytes without a delimiter raise at once, bounding memory."""
    framer = Framer(CRLF, max_frame_size=1024)
    framer.feed(b"A" * 1025)  # max + len(delimiter) - 1 bytes: still within the slack
    assert framer.next_frame() is NEED_DATA
    with pytest.raises(FrameTooLarge) as info:
        framer.feed(b"A")
    assert info.value.size == 1026
    assert framer.buffered == 0  # the buffer was released


def test_unterminated_line_over_bound_rejected_in_one_feed() -> None:
    """S1: a single huge read without a delimiter is rejected by feed() itself."""
    framer = Framer(LF, max_frame_size=100)
    with pytest.raises(FrameTooLarge):
        framer.feed(b"x" * 10_000)


def test_split_crlf_after_over_long_line_still_rejected() -> None:
    """S1: max + 1 bytes then a split CRLF is still too long."""
    framer = Framer(CRLF, max_frame_size=1024)
    framer.feed(b"A" * 1025)
    with pytest.raises(FrameTooLarge):
        framer.feed(b"\r")  # 1026 bytes without a delimiter: over max + len(b"\r\n") - 1
    with pytest.raises(FrameTooLarge):
        framer.feed(b"\n")


def test_keep_delimiter_does_not_count_against_limit() -> None:
    framer = Framer(LF, max_frame_size=4, keep_delimiter=True)
    framer.feed(b"abcd\n")
    assert framer.next_frame() == b"abcd\n"


@pytest.mark.parametrize("fmt", PREFIX_FORMATS)
def test_length_prefix_exact_max_accepted(fmt: str) -> None:
    framer = Framer(LengthPrefix(fmt), max_frame_size=200)
    framer.feed(struct.pack(fmt, 200) + b"z" * 200)
    assert framer.next_frame() == b"z" * 200


@pytest.mark.parametrize("fmt", PREFIX_FORMATS)
def test_length_prefix_over_limit_rejected_before_body(fmt: str) -> None:
    framer = Framer(LengthPrefix(fmt), max_frame_size=200)
    with pytest.raises(FrameTooLarge) as info:
        framer.feed(struct.pack(fmt, 201))  # the header alone, no body yet
    assert info.value.size == 201
    assert info.value.limit == 200


def test_length_prefix_huge_announcement_rejected() -> None:
    framer = Framer(LengthPrefix("!Q"))
    framer.feed(b"\xff\xff")
    with pytest.raises(FrameTooLarge) as info:
        framer.feed(b"\xff" * 6)
    assert info.value.size == 2**64 - 1


def test_byte_count_exact_max() -> None:
    framer = Framer(ByteCount(16), max_frame_size=16)
    framer.feed(b"q" * 16)
    assert framer.next_frame() == b"q" * 16


def test_error_names_peer() -> None:
    framer = Framer(LF, max_frame_size=4, peer=("192.0.2.1", 25))
    with pytest.raises(FrameTooLarge) as info:
        framer.feed(b"too long\n")
    assert info.value.peer == ("192.0.2.1", 25)
    assert "192.0.2.1:25" in str(info.value)
    assert isinstance(info.value, PeerProtocolError)


# -- No resync after FrameTooLarge -----------------------------------------------------------


def _assert_poisoned(framer: Framer, size: int) -> None:
    for call in (
        framer.next_frame,
        lambda: framer.feed(b"QUIT\n"),
        lambda: drain(framer),
        framer.feed_eof,
    ):
        with pytest.raises(FrameTooLarge) as info:
            call()
        assert (info.value.size, info.value.limit) == (size, 1024)


def test_poisoned_after_over_long_line_single_feed() -> None:
    """S1: the command after an over-long line never comes out (no smuggling)."""
    framer = Framer(LF, max_frame_size=1024)
    with pytest.raises(FrameTooLarge) as info:
        framer.feed(b"A" * 3000 + b"\nQUIT\n")
    assert info.value.size == 3000
    _assert_poisoned(framer, 3000)
    framer.set_terminator(CRLF)  # changing terminator does not cure it
    _assert_poisoned(framer, 3000)


def test_poisoned_after_over_long_line_in_pieces() -> None:
    """S1: the tail of an over-long line is never returned as a fresh frame."""
    framer = Framer(LF, max_frame_size=1024)
    assert feed_chunks(framer, [b"A" * 1000]) == []
    with pytest.raises(FrameTooLarge):
        framer.feed(b"A" * 1000)
    with pytest.raises(FrameTooLarge):
        framer.feed(b"A" * 1000 + b"\nQUIT\n")
    with pytest.raises(FrameTooLarge):
        framer.feed(b"QUIT\n")
    assert framer.buffered == 0


def test_poisoned_after_length_prefix_over_limit() -> None:
    framer = Framer(LengthPrefix("!H"), max_frame_size=1024)
    with pytest.raises(FrameTooLarge):
        framer.feed(struct.pack("!H", 3000))
    with pytest.raises(FrameTooLarge):
        framer.feed(b"x" * 3000 + struct.pack("!H", 1) + b"y")
    with pytest.raises(FrameTooLarge):
        framer.next_frame()


# -- End of stream ---------------------------------------------------------------------------


def test_clean_eof() -> None:
    framer = Framer(LF)
    framer.feed(b"a\n")
    assert framer.next_frame() == b"a"
    framer.feed_eof()  # nothing buffered: fine
    assert framer.next_frame() is NEED_DATA


def test_eof_mid_delimited_frame() -> None:
    framer = Framer(CRLF)
    framer.feed(b"QUIT\r")
    with pytest.raises(IncompleteFrame) as info:
        framer.feed_eof()
    assert info.value.received == 5
    assert info.value.missing is None


def test_eof_mid_byte_count_frame() -> None:
    framer = Framer(ByteCount(10))
    framer.feed(b"abc")
    with pytest.raises(IncompleteFrame) as info:
        framer.feed_eof()
    assert (info.value.received, info.value.missing) == (3, 7)


def test_eof_mid_length_prefix_body() -> None:
    framer = Framer(LengthPrefix("!I"), peer="/run/sock")
    framer.feed(struct.pack("!I", 10) + b"abcd")
    with pytest.raises(IncompleteFrame) as info:
        framer.feed_eof()
    assert (info.value.received, info.value.missing) == (8, 6)
    assert info.value.peer == "/run/sock"


def test_eof_mid_length_prefix_header() -> None:
    framer = Framer(LengthPrefix("!I"))
    framer.feed(b"\x00")
    with pytest.raises(IncompleteFrame) as info:
        framer.feed_eof()
    assert (info.value.received, info.value.missing) == (1, 3)  # at least 3 more


def test_eof_with_complete_frames_still_buffered() -> None:
    framer = Framer(LF)
    framer.feed(b"a\nb\npartial")
    framer.feed_eof()  # frames are still available: not an error yet
    assert framer.next_frame() == b"a"
    assert framer.next_frame() == b"b"
    with pytest.raises(IncompleteFrame) as info:
        framer.next_frame()
    assert (info.value.received, info.value.missing) == (7, None)


def test_feed_after_eof_refused() -> None:
    framer = Framer(LF)
    framer.feed_eof()
    with pytest.raises(ConfigurationError):
        framer.feed(b"x")


# -- Efficiency ------------------------------------------------------------------------------


def test_many_small_frames_in_one_feed() -> None:
    # Quadratic copying (bytes(buf[pos:]) per frame) would take far too long here.
    count = 100_000
    framer = Framer(LF)
    framer.feed(b"x\n" * count)
    assert sum(1 for _ in framer.frames()) == count
    assert framer.buffered == 0


def test_interleaved_feeds_and_partial_drains_compact_correctly() -> None:
    framer = Framer(LF, max_frame_size=64)
    expected: list[bytes] = []
    got: list[bytes] = []
    for i in range(3000):
        line = b"%d" % i
        expected.append(line)
        framer.feed(line + b"\n")
        if i % 7 == 0:  # leave some frames queued across feeds
            got.extend(drain(framer))
    got.extend(drain(framer))
    assert got == expected


def test_compaction_with_partial_frame_always_buffered() -> None:
    # Misaligned reads leave a partial line after every drain, so the buffer is
    # compacted (not cleared) while a delimiter search is in progress.
    lines = [b"line %d %s" % (i, b"x" * (i % 37)) for i in range(20_000)]
    data = b"".join(line + b"\r\n" for line in lines)
    for size in (997, 4099, 65_537):
        framer = Framer(CRLF)
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert feed_chunks(framer, chunks) == lines
        assert framer.buffered == 0


@pytest.mark.slow
def test_memory_stays_bounded_on_a_long_stream() -> None:
    # A long-lived connection must not keep every byte it ever received: the
    # consumed prefix of the buffer has to be released as it goes.
    chunk = b"".join(b"%08d %s\n" % (i, b"y" * 80) for i in range(45))  # ~4 KiB, 45 lines
    chunk = chunk[:-3]  # misaligned: a partial line is left over after every drain
    framer = Framer(LF)
    count = 0
    tracemalloc.start()
    try:
        for _ in range(1000):  # ~4 MiB in total
            framer.feed(chunk)
            for _frame in framer.frames():
                count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count > 40_000
    assert peak < 512 * 1024


# -- Properties: any split of the stream yields the same frames ------------------------------

DELIMITERS = st.one_of(
    st.sampled_from([b"\n", b"\r\n", b"\x00", b"\r\n\r\n", b"aab", b"abab", b"END"]),
    st.binary(min_size=1, max_size=4),
)


@st.composite
def delimited_stream(draw: st.DrawFn) -> tuple[Terminator, list[bytes], bytes]:
    terminator = Delimiter(draw(DELIMITERS))
    body = st.binary(max_size=40) | st.lists(st.sampled_from(b"abENDx\r\n")).map(bytes)
    frames = draw(
        st.lists(
            body.filter(lambda f: terminator.delimiter not in f + terminator.delimiter[:-1]),
            max_size=12,
        )
    )
    return terminator, frames, b"".join(terminator.encode(f) for f in frames)


@st.composite
def counted_stream(draw: st.DrawFn) -> tuple[Terminator, list[bytes], bytes]:
    size = draw(st.integers(min_value=1, max_value=20))
    frames = draw(st.lists(st.binary(min_size=size, max_size=size), max_size=12))
    return ByteCount(size), frames, b"".join(frames)


@st.composite
def prefixed_stream(draw: st.DrawFn) -> tuple[Terminator, list[bytes], bytes]:
    terminator = LengthPrefix(draw(st.sampled_from(PREFIX_FORMATS)))
    frames = draw(st.lists(st.binary(max_size=300), max_size=8))
    return terminator, frames, b"".join(terminator.encode(f) for f in frames)


ANY_STREAM = st.one_of(delimited_stream(), counted_stream(), prefixed_stream())
CUTS = st.lists(st.integers(min_value=0), max_size=20)


@settings(deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(stream=delimited_stream(), cuts=CUTS)
@pytest.mark.slow
def test_property_delimiter_any_split(
    stream: tuple[Terminator, list[bytes], bytes], cuts: list[int]
) -> None:
    terminator, frames, data = stream
    framer = Framer(terminator)
    assert feed_chunks(framer, split_at(data, cuts)) == frames
    assert framer.buffered == 0
    framer.feed_eof()


@settings(deadline=None)
@given(stream=counted_stream(), cuts=CUTS)
def test_property_byte_count_any_split(
    stream: tuple[Terminator, list[bytes], bytes], cuts: list[int]
) -> None:
    terminator, frames, data = stream
    framer = Framer(terminator)
    assert feed_chunks(framer, split_at(data, cuts)) == frames
    framer.feed_eof()


@settings(deadline=None)
@given(stream=prefixed_stream(), cuts=CUTS)
def test_property_length_prefix_any_split(
    stream: tuple[Terminator, list[bytes], bytes], cuts: list[int]
) -> None:
    terminator, frames, data = stream
    framer = Framer(terminator)
    assert feed_chunks(framer, split_at(data, cuts)) == frames
    framer.feed_eof()


@settings(deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(stream=ANY_STREAM)
def test_property_byte_by_byte_equals_whole(
    stream: tuple[Terminator, list[bytes], bytes],
) -> None:
    terminator, _, data = stream
    whole = Framer(terminator)
    whole.feed(data)
    by_byte = Framer(terminator)
    assert feed_chunks(by_byte, [data[i : i + 1] for i in range(len(data))]) == drain(whole)
    assert drain(whole) == []


def _encodable_with(delim: bytes) -> Callable[[bytes], bool]:
    """Predicate: the frame can be sent with ``delim`` (no early delimiter match)."""
    return lambda frame: delim not in frame + delim[:-1]


@st.composite
def mixed_stream(draw: st.DrawFn) -> tuple[list[tuple[Terminator, bytes]], bytes]:
    """Frames each with its own terminator, as a protocol that switches would produce."""
    items: list[tuple[Terminator, bytes]] = []
    for _ in range(draw(st.integers(min_value=0, max_value=10))):
        kind = draw(st.sampled_from(["delimiter", "count", "prefix"]))
        terminator: Terminator
        if kind == "delimiter":
            terminator = Delimiter(draw(DELIMITERS))
            delim = terminator.delimiter
            frame = draw(st.binary(max_size=20).filter(_encodable_with(delim)))
        elif kind == "count":
            frame = draw(st.binary(max_size=20))
            terminator = ByteCount(len(frame))
        else:
            terminator = LengthPrefix(draw(st.sampled_from(PREFIX_FORMATS)))
            frame = draw(st.binary(max_size=20))
        items.append((terminator, frame))
    return items, b"".join(t.encode(f) for t, f in items)


@settings(deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(stream=mixed_stream(), cuts=CUTS)
def test_property_switching_terminators_any_split(
    stream: tuple[list[tuple[Terminator, bytes]], bytes], cuts: list[int]
) -> None:
    items, data = stream
    chunks = iter(split_at(data, cuts))
    framer = Framer(LF)
    got: list[bytes] = []
    for terminator, _ in items:
        framer.set_terminator(terminator)
        frame = framer.next_frame()
        while frame is NEED_DATA:
            framer.feed(next(chunks))
            frame = framer.next_frame()
        got.append(frame)
    assert got == [f for _, f in items]
    assert b"".join(chunks) == b""
    assert framer.buffered == 0


# -- Property: garbage never raises anything but FrameTooLarge -------------------------------

TERMINATORS = st.one_of(
    DELIMITERS.map(Delimiter),
    st.integers(min_value=0, max_value=16).map(ByteCount),
    st.sampled_from(PREFIX_FORMATS).map(LengthPrefix),
)


def memory_bound(terminator: Terminator, limit: int) -> int:
    """Most bytes a drained framer may hold: a partial frame can be no larger."""
    if isinstance(terminator, Delimiter):
        return limit + len(terminator.delimiter) - 1
    if isinstance(terminator, ByteCount):
        return max(terminator.size - 1, 0)
    return terminator.prefix_size + limit - 1


@settings(deadline=None)
@given(
    terminator=TERMINATORS,
    chunks=st.lists(st.binary(max_size=64), max_size=30),
    limit=st.integers(min_value=16, max_value=64),
)
def test_property_garbage_only_raises_frame_too_large(
    terminator: Terminator, chunks: list[bytes], limit: int
) -> None:
    framer = Framer(terminator, max_frame_size=limit)
    poisoned = False
    for chunk in chunks:
        try:
            framer.feed(chunk)
            for frame in framer.frames():
                assert isinstance(frame, bytes)
                assert len(frame) <= limit + (
                    len(terminator.delimiter) if isinstance(terminator, Delimiter) else 0
                )
        except FrameTooLarge:
            poisoned = True
            break
        if isinstance(terminator, ByteCount) and terminator.size == 0:
            continue  # zero-byte frames never consume the buffer
        assert framer.buffered <= memory_bound(terminator, limit)
    if poisoned:
        with pytest.raises(FrameTooLarge):
            framer.feed(b"\n")
        with pytest.raises(FrameTooLarge):
            framer.next_frame()
    else:
        try:
            framer.feed_eof()
        except IncompleteFrame:
            assert framer.buffered > 0
