"""The line connection, driven in memory: fast path = general path, batches, ordering."""

from __future__ import annotations

import asyncio
import itertools
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncnet import LineHandler
from asyncnet.servers._connection.line import TRANSITIONS, State
from asyncnet.testing import DrivenConnection, FakeClock, drive


class Bracket(LineHandler):
    """Replies ``<line>``; ``later`` suspends first; ``quit`` ends the session."""

    max_line_length = 12

    async def handle_line(self, line: str) -> str | None:
        if line == "later":
            await asyncio.sleep(0)
        if line == "quit":
            self.close()
            return "bye"
        if line == "silent":
            return None
        return f"<{line}>"


_WORDS = st.sampled_from(
    [b"", b"a", b"later", b"quit", b"silent", b"x" * 12, b"y" * 13, b"\xff", b"caf\xc3\xa9", b"\r"]
)


def _normalise(output: bytes) -> list[str]:
    # The length an over-long line is reported with depends on when it was proven too
    # long, i.e. on the split; the reply itself must not.
    text = output.decode("utf-8", "replace")
    return [
        re.sub(r"^error: line too long.*", "error: line too long", line)
        for line in text.split("\n")
    ]


async def _run(chunks: list[bytes]) -> tuple[list[str], int, int]:
    conn = drive(Bracket)
    for chunk in chunks:
        conn.feed(chunk)
        await conn.settled()
    conn.feed_eof()
    await conn.wait_closed()
    stats = conn.server.stats
    return _normalise(conn.output()), stats.protocol_errors, stats.handler_errors


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points:
        pieces.append(data[last:point])
        last = point
    pieces.append(data[last:])
    return [p for p in pieces if p]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(_WORDS, st.sampled_from([b"\n", b"\r\n"])), max_size=8),
    st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_fast_and_general_paths_give_the_same_replies(
    lines: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    """One line per read (the fast path) and any split of the same input
    (the general path) produce the same replies, errors and counters."""
    data = b"".join(word + ending for word, ending in lines)
    one_line_per_read = [word + ending for word, ending in lines]
    fast = asyncio.run(_run(one_line_per_read))
    assert asyncio.run(_run(_split(data, cuts))) == fast
    assert asyncio.run(_run([data] if data else [])) == fast


async def test_a_read_of_many_lines_is_handled_in_batches() -> None:
    """Fairness: lines_per_batch lines, then the loop's turn, then the rest."""
    seen_at: list[int] = []
    turns = 0

    class Count(LineHandler):
        lines_per_batch = 10

        def handle_line(self, line: str) -> str:
            seen_at.append(turns)
            return line

    async def ticker() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    conn = drive(Count)
    conn.feed(b"".join(b"%d\n" % i for i in range(35)))
    assert len(await conn.replies()) == 35
    ticking.cancel()
    # four batches (10 + 10 + 10 + 5), each in a later turn of the loop than the one before
    assert [len(list(group)) for _, group in itertools.groupby(seen_at)] == [10, 10, 10, 5]
    assert seen_at == sorted(seen_at)
    assert conn.output() == b""  # replies() took them all, in order


async def test_over_long_line_while_a_reply_is_pending_comes_after_that_reply() -> None:
    """S1: a line proven too long while a coroutine is suspended is refused after its
    reply; then the 2 s linger, on the kit's clock."""
    clock = FakeClock()
    conn = drive(Bracket, clock=clock)
    conn.feed(b"later\n" + b"z" * 40)
    await conn.settled()
    assert state_of(conn) is State.LINGERING
    clock.advance(2.0)
    await conn.wait_closed()
    first, second, *_ = conn.output().split(b"\n")
    assert first == b"<later>"
    assert second.startswith(b"error: line too long")
    assert conn.server.stats.protocol_errors == 1


async def test_handle_line_returning_the_wrong_type_is_a_handler_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S5: handle_line() returning neither str, None nor an awaitable: one logged
    TypeError that says what it must return, and that connection is closed."""

    class Wrong(LineHandler):
        def handle_line(self, line: str) -> Any:
            return 42

    conn = drive(Wrong)
    conn.feed(b"anything\n")
    await conn.wait_closed()
    assert conn.server.stats.handler_errors == 1
    assert "handle_line() must return str, None or an awaitable, not int" in caplog.text


# -- the state machine ----------------------------------------------------------


def state_of(conn: DrivenConnection) -> State:
    """The line connection's state, re-read on every call."""
    state: State = conn.protocol.state
    return state


def test_the_transition_table_is_a_machine_that_always_ends_closed() -> None:
    """Every state is in the table, CLOSED is the only end, and CLOSED is reachable from
    every state (so a connection can always go away)."""
    assert set(TRANSITIONS) == set(State)
    assert [state for state, nexts in TRANSITIONS.items() if not nexts] == [State.CLOSED]
    for state, nexts in TRANSITIONS.items():
        assert state not in nexts
        if state is not State.CLOSED:
            assert State.CLOSED in nexts
    assert TRANSITIONS[State.LINGERING] == {State.CLOSED}  # nothing more once lingering


async def test_a_session_walks_the_states() -> None:
    """READY, BUSY while a coroutine is suspended, READY again, CLOSING when the handler
    closes, CLOSED once the transport is gone."""
    conn = drive(Bracket)
    assert state_of(conn) is State.READY
    conn.feed(b"later\n")
    assert state_of(conn) is State.BUSY
    assert conn.transport.reading_paused  # blocked: input waits in the "kernel"
    await conn.settled()
    assert state_of(conn) is State.READY
    assert not conn.transport.reading_paused
    conn.feed(b"quit\n")
    assert state_of(conn) is State.CLOSING
    await conn.wait_closed()
    assert state_of(conn) is State.CLOSED
    assert conn.output() == b"<later>\nbye\n"


async def test_a_long_batch_yields_and_an_error_lingers() -> None:
    """YIELDING between batches; LINGERING after a protocol error, until the peer's end
    of input closes the connection."""

    class Two(Bracket):
        lines_per_batch = 2

    conn = drive(Two)
    conn.feed(b"a\nb\nc\n")
    assert state_of(conn) is State.YIELDING
    await conn.settled()
    assert state_of(conn) is State.READY
    conn.feed(b"y" * 13 + b"\n")
    assert state_of(conn) is State.LINGERING
    conn.feed_eof()
    await conn.wait_closed()
    assert state_of(conn) is State.CLOSED


async def test_an_illegal_transition_is_a_bug_caught_at_once() -> None:
    """A change outside the table fails loudly (in debug runs) instead of leaving the
    connection in a state nothing expects."""
    conn = drive(Bracket)
    conn.feed_eof()
    await conn.wait_closed()
    with pytest.raises(AssertionError, match=r"CLOSED -> State\.READY"):
        conn.protocol._to(State.READY)
