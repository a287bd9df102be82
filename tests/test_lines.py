"""The sans-IO line buffer: lines, limits, no resync, dot-terminated bodies (no sockets)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncnet.errors import (
    ConfigurationError,
    FrameTooLarge,
    IncompleteFrame,
    LineTooLong,
    LocalProtocolError,
)
from asyncnet.protocols import (
    END_OF_BODY,
    EOF,
    NEED_DATA,
    LineBuffer,
    LineSplitter,
    check_line_argument,
    dot_stuff,
    dot_unstuff,
    ensure_final_newline,
)


def drain(buf: LineBuffer, out: list[object]) -> None:
    """Append every line buffered now to ``out`` (an error may stop it midway)."""
    while True:
        item = buf.next_line()
        if item is not NEED_DATA:
            out.append(item)
        if not isinstance(item, bytes):
            return


def events(chunks: list[bytes], limit: int = 16, **options: object) -> list[object]:
    """Feed ``chunks`` one by one, draining after each; the error (by type) ends the list."""
    buf = LineBuffer(limit, **options)  # type: ignore[arg-type]
    out: list[object] = []
    try:
        for chunk in chunks:
            buf.feed(chunk)
            drain(buf, out)
        buf.feed_eof()
        drain(buf, out)
    except LineTooLong as exc:
        out.append(("LineTooLong", exc.limit))
    return out


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces


def test_lines_with_cr_stripped_and_need_data() -> None:
    buf = LineBuffer(64)
    buf.feed(b"USER bob\r\nPA")
    assert buf.next_line() == b"USER bob"
    assert buf.next_line() is NEED_DATA
    buf.feed(b"SS secret\nlast")
    assert buf.next_line() == b"PASS secret"
    assert buf.next_line() is NEED_DATA
    buf.feed_eof()
    assert buf.next_line() == b"last"
    assert buf.last_line_unterminated
    assert buf.next_line() is EOF


def test_line_of_exactly_the_limit_with_crlf_is_accepted() -> None:
    buf = LineBuffer(4)
    buf.feed(b"abcd\r")
    buf.feed(b"\n")
    assert buf.next_line() == b"abcd"


def test_limit_plus_one_without_cr_is_refused() -> None:
    buf = LineBuffer(4)
    buf.feed(b"abcde\n")
    with pytest.raises(LineTooLong):
        buf.next_line()


def test_over_long_partial_line_raises_from_feed_and_never_resyncs() -> None:
    """S1: the tail of an over-long line never comes back as a line (no smuggled QUIT)."""
    buf = LineBuffer(8)
    buf.feed(b"x" * 6)
    with pytest.raises(LineTooLong) as info:
        buf.feed(b"x" * 6)  # no delimiter yet, but already too long
    assert info.value.limit == 8
    for call in (buf.next_line, buf.feed_eof, lambda: buf.feed(b"QUIT\n")):
        with pytest.raises(LineTooLong):
            call()


def test_complete_over_long_line_raises_when_reached() -> None:
    """S1: a complete over-long line followed by QUIT: the error, never QUIT."""
    buf = LineBuffer(8)
    buf.feed(b"ok\n" + b"x" * 12 + b"\nQUIT\n")
    assert buf.next_line() == b"ok"
    with pytest.raises(LineTooLong):
        buf.next_line()
    with pytest.raises(LineTooLong):
        buf.next_line()


def test_lines_before_an_over_long_tail_are_still_returned() -> None:
    buf = LineBuffer(8)
    buf.feed(b"ok\n" + b"x" * 20)
    assert buf.next_line() == b"ok"
    with pytest.raises(LineTooLong):
        buf.next_line()


def test_split_crlf_at_the_boundary_is_one_line() -> None:
    """S1 boundary (Twisted's maximumLineLengthPartialDelimiter): \\r in one read, \\n next."""
    buf = LineBuffer(4, delimiter=b"\r\n")
    buf.feed(b"abcd\r")
    assert buf.next_line() is NEED_DATA
    buf.feed(b"\n")
    assert buf.next_line() == b"abcd"


def test_feed_is_linear_for_a_dribbled_line() -> None:
    """One byte at a time up to the limit: each feed looks only at what it added."""
    buf = LineBuffer(200_000)
    for _ in range(100_000):
        buf.feed(b"a")
    buf.feed(b"\n")
    assert buf.next_line() == b"a" * 100_000


@given(
    st.lists(st.binary(max_size=24).map(lambda b: b.replace(b"\n", b"")), max_size=8),
    st.lists(st.integers(min_value=0, max_value=400), max_size=6),
    st.sampled_from([b"\n", b"\r\n"]),
)
def test_every_split_gives_the_same_events_as_one_feed(
    lines: list[bytes], cuts: list[int], ending: bytes
) -> None:
    data = b"".join(line + ending for line in lines)
    whole = events([data])
    assert events(splits(data, cuts)) == whole
    # and the model: what str.split would say, within the limit
    # ... and what a plain split says: \r\n endings lose their \r, and with \n
    # endings a line's own final \r is taken for one
    strip = ending == b"\n"
    expected = [line[:-1] if strip and line.endswith(b"\r") else line for line in lines]
    if all(len(line) <= 16 for line in expected):
        assert whole == [*expected, EOF]


@given(st.binary(max_size=120), st.lists(st.integers(min_value=0, max_value=200), max_size=6))
def test_any_input_any_split_same_events(data: bytes, cuts: list[int]) -> None:
    assert events(splits(data, cuts), limit=10) == events([data], limit=10)


# -- dot-terminated bodies ----------------------------------------------------------


def test_dot_stuffing_on_the_wire() -> None:
    """P1: lines ., .., ... and no final newline."""
    assert dot_stuff(b".\r\n..\r\n...\r\nend") == b"..\r\n...\r\n....\r\nend\r\n.\r\n"
    assert dot_stuff(b"") == b".\r\n"
    assert dot_stuff(b"a\nb\n") == b"a\r\nb\r\n.\r\n"


def test_bare_cr_inside_a_line_is_data() -> None:
    assert dot_stuff(b"a\rb\r\n") == b"a\rb\r\n.\r\n"
    assert dot_unstuff(b"a\rb\r\n.\r\n") == b"a\rb\r\n"


def test_body_then_lines_again() -> None:
    buf = LineBuffer(100)
    buf.feed(b"+OK 2 messages\r\n..x\r\nhello\r\n.\r\n+OK bye\r\n")
    assert buf.next_line() == b"+OK 2 messages"
    buf.start_dot_body()
    assert buf.next_body() == b".x\r\nhello\r\n"
    assert not buf.in_body
    assert buf.next_line() == b"+OK bye"


def test_body_accepts_bare_lf_terminator() -> None:
    assert dot_unstuff(b"a\n.\n") == b"a\n"


def test_body_ended_by_eof_is_incomplete() -> None:
    """P2: the server closes before .CRLF: an error, never a short body."""
    buf = LineBuffer(100)
    buf.start_dot_body()
    buf.feed(b"line one\r\nline tw")
    assert buf.next_body() is NEED_DATA
    buf.feed_eof()
    with pytest.raises(IncompleteFrame):
        buf.next_body()


def test_body_size_limit_poisons() -> None:
    """P4: a body over its limit is refused while it arrives."""
    buf = LineBuffer(100)
    buf.start_dot_body(max_body_size=20)
    buf.feed(b"0123456789\r\n")
    assert buf.next_body() is NEED_DATA
    buf.feed(b"0123456789\r\n")
    with pytest.raises(FrameTooLarge):
        buf.next_body()
    with pytest.raises(FrameTooLarge):
        buf.feed(b".\r\n")


def test_body_line_limit() -> None:
    """P4: a 100 KB line inside a body raises LineTooLong."""
    buf = LineBuffer(1000)
    buf.start_dot_body()
    buf.feed(b"x" * 100_000)
    with pytest.raises(LineTooLong):
        buf.next_body()


def test_body_chunks_stream_and_end() -> None:
    buf = LineBuffer(100)
    buf.start_dot_body()
    buf.feed(b"..a\r\nb")
    assert buf.next_body_chunk() == b".a\r\n"
    assert buf.next_body_chunk() is NEED_DATA
    buf.feed(b"\r\n.\r\n+OK\r\n")
    assert buf.next_body_chunk() == b"b\r\n"
    assert buf.next_body_chunk() is END_OF_BODY
    assert buf.next_line() == b"+OK"


def test_take_bytes_switches_to_raw() -> None:
    buf = LineBuffer(100)
    buf.feed(b"SIZE 5\r\nhelloNEXT\r\n")
    assert buf.next_line() == b"SIZE 5"
    assert buf.take_bytes(5) == b"hello"
    assert buf.next_line() == b"NEXT"


def read_body(chunks: list[bytes], *, streamed: bool) -> bytes:
    buf = LineBuffer(10_000)
    buf.start_dot_body()
    parts: list[bytes] = []
    for chunk in chunks:
        buf.feed(chunk)
        while True:
            item = buf.next_body_chunk() if streamed else buf.next_body()
            if item is NEED_DATA:
                break
            if item is END_OF_BODY:
                return b"".join(parts)
            assert isinstance(item, bytes)
            parts.append(item)
            if not streamed:
                return item
    raise AssertionError("no terminator")


bodies = st.lists(
    st.sampled_from([b".", b"..", b"...", b"", b"a", b".a", b"a.", b"\r", b"x\ry", b" ."]),
    max_size=12,
).map(lambda parts: b"\r\n".join(parts))


@given(bodies, st.lists(st.integers(min_value=0, max_value=300), max_size=6), st.booleans())
def test_dot_body_round_trip_any_split(body: bytes, cuts: list[int], streamed: bool) -> None:
    """P1: any body round-trips byte-exact (given a final CRLF), however it is split."""
    wire = dot_stuff(body)
    assert read_body(splits(wire, cuts), streamed=streamed) == ensure_final_newline(body)
    crlf_body = ensure_final_newline(body)
    assert dot_unstuff(dot_stuff(crlf_body)) == crlf_body


def test_check_line_argument() -> None:
    """P5/M1/F4: CR, LF and NUL are refused before anything is sent."""
    assert check_line_argument("bob", "user name") == "bob"
    for bad in ("a\rb", "a\nb", "a\0b"):
        with pytest.raises(LocalProtocolError, match="user name"):
            check_line_argument(bad, "user name")


def batch_events(chunks: list[bytes], batch: int, limit: int = 16) -> list[object]:
    """As :func:`events`, but taking lines with ``next_lines(batch)``."""
    buf = LineBuffer(limit)
    out: list[object] = []

    def take() -> None:
        while lines := buf.next_lines(batch):
            assert len(lines) <= batch
            out.extend(lines)
        if buf.at_eof and not buf.pending:
            out.append(EOF)

    try:
        for chunk in chunks:
            buf.feed(chunk)
            take()
        buf.feed_eof()
        take()
    except LineTooLong as exc:
        out.append(("LineTooLong", exc.limit))
    return out


@given(
    st.binary(max_size=160).map(lambda b: b.replace(b"\x00", b"\n")),
    st.lists(st.integers(min_value=0, max_value=200), max_size=6),
    st.integers(min_value=1, max_value=5),
)
def test_next_lines_gives_what_next_line_gives(data: bytes, cuts: list[int], batch: int) -> None:
    """The batch call the server uses is next_line() in a loop, for any
    input, any split and any batch size (limits and the final unterminated line too)."""
    assert batch_events(splits(data, cuts), batch) == events(splits(data, cuts))


def split_all(splitter: LineSplitter, data: bytes, count: int) -> tuple[list[bytes], int]:
    lines: list[bytes] = []
    return lines, splitter.split(data, 0, 0, count, lines)


@given(
    st.binary(max_size=60).map(lambda b: b.replace(b"\x00", b"\n").replace(b"\x01", b"\r")),
    st.integers(min_value=1, max_value=6),
    st.sampled_from([(b"\n", True), (b"\n", False), (b"\r\n", True), (b"::", True)]),
)
def test_split_gives_the_lines_a_buffer_gives(
    data: bytes, count: int, rules: tuple[bytes, bool]
) -> None:
    """The one split routine: a read split directly yields exactly the lines a buffer fed
    the same read hands out, and when it stops short the rest is over the limit exactly
    when more than ``tail_limit`` bytes are left (the test every caller relies on)."""
    delimiter, strip_cr = rules
    splitter = LineSplitter(8, delimiter=delimiter, strip_cr=strip_cr)
    lines, end = split_all(splitter, data, count)
    assert len(lines) <= count
    buf = LineBuffer(8, delimiter=delimiter, strip_cr=strip_cr)
    expected: list[bytes] = []
    refused = False
    try:
        buf.feed(data)
        while len(expected) < count and isinstance(line := buf.next_line(), bytes):
            expected.append(line)
    except LineTooLong:
        refused = True
    assert lines == expected
    if len(lines) < count:
        assert (len(data) - end > splitter.tail_limit) == refused
    # Searching from where an earlier search stopped changes nothing.
    again: list[bytes] = []
    i = data.find(delimiter)
    search_from = i if i >= 0 else max(0, len(data) - len(delimiter) + 1)
    assert splitter.split(data, 0, search_from, count, again) == end
    assert again == lines


def test_splitter_rules_and_their_errors() -> None:
    """CR stripping is the b"\\n" delimiter's alone; nonsense rules are refused."""
    assert split_all(LineSplitter(4), b"ab\r\ncd\n", 5) == ([b"ab", b"cd"], 7)
    assert split_all(LineSplitter(4, strip_cr=False), b"ab\r\n", 5) == ([b"ab\r"], 4)
    crlf = LineSplitter(4, delimiter=b"\r\n")
    assert not crlf.strip_cr
    assert split_all(crlf, b"a\rb\r\nc", 5) == ([b"a\rb"], 5)
    # exactly the limit, with its CR: accepted; one more byte: never split off
    assert split_all(LineSplitter(4), b"abcd\r\n", 1) == ([b"abcd"], 6)
    assert split_all(LineSplitter(4), b"abcde\n", 1) == ([], 0)
    assert LineSplitter(4).tail_limit == 5
    assert crlf.tail_limit == 5
    assert LineSplitter(4).strip(b"last\r") == b"last"
    with pytest.raises(ConfigurationError, match="max_line_length"):
        LineSplitter(0)
    with pytest.raises(ConfigurationError, match="delimiter"):
        LineSplitter(4, delimiter=b"")
