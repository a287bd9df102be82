"""asyncnet.testing.drive: handlers driven without sockets, with the real connection
classes; the quiescent signal it waits on and the fake clock of its deadlines."""

from __future__ import annotations

import asyncio
import time

import pytest

from asyncnet import CommandHandler, ConfigurationError, LineHandler, StateError
from asyncnet.demos.upper import Upper
from asyncnet.servers import FramedHandler, StreamHandler
from asyncnet.testing import FakeClock, FakeTransport, drive


class Hello(CommandHandler):
    greeting_text = "+OK ready"
    reply_delimiter = b"\r\n"
    allowed_verbs = {"start": {"HELO", "QUIT"}, "ready": {"SAY", "QUIT"}}
    state = "start"

    def greeting(self) -> str:
        return self.greeting_text

    def do_HELO(self, args: str) -> str:
        self.state = "ready"
        return f"+OK hello {args}"

    def do_SAY(self, args: str) -> str:
        return f"+OK {args}"

    def do_QUIT(self, args: str) -> str:
        self.close()
        return "+OK bye"


class Shout(FramedHandler):
    terminator = b"\n"

    async def handle(self) -> None:
        async for frame in self.frames():
            await self.send_frame(frame.upper())


async def test_line_handler_replies_in_order_and_finishes_on_eof() -> None:
    """The upper demo's handler: replies, the tutorial's blank line ends the session."""
    conn = drive(Upper)
    conn.feed(b"hello\nwor")
    assert await conn.replies() == ["HELLO"]
    conn.feed(b"ld\n\n")
    assert await conn.replies() == ["WORLD"]
    await conn.wait_closed()
    assert conn.closed
    assert conn.server.stats.connections_active == 0
    assert conn.server.stats.bytes_in == len(b"hello\nworld\n\n")


async def test_command_handler_states_over_crlf() -> None:
    """CommandHandler in memory: greeting, state-dependent verbs, CRLF replies."""
    conn = drive(Hello)
    conn.feed(b"SAY hi\r\nHELO bob\r\nsay hi\r\nQUIT\r\n")
    assert await conn.replies() == [
        "+OK ready",
        "error: SAY not allowed now",
        "+OK hello bob",
        "+OK hi",
        "+OK bye",
    ]
    await conn.wait_closed()


async def test_framed_handler_and_counted_replies() -> None:
    """FramedHandler (a stream handler with a task) works the same way."""
    conn = drive(Shout)
    conn.feed(b"a\nbb\n")
    assert await conn.replies(2) == ["A", "BB"]
    conn.feed(b"ccc")
    assert await conn.replies() == []  # no delimiter yet: the handler waits for input
    conn.feed(b"\n")
    assert await conn.replies() == ["CCC"]
    conn.feed_eof()
    await conn.wait_closed()


async def test_error_reply_then_close_for_an_over_long_line() -> None:
    """S1 in memory: the error reply, the half-close (write_eof) and the counter."""

    class Short(Upper):
        max_line_length = 8

    conn = drive(Short)
    conn.feed(b"x" * 20)
    assert conn.output().startswith(b"error: line too long")
    assert conn.transport.eof_written
    assert conn.server.stats.protocol_errors == 1


async def test_a_peer_that_stops_reading_pauses_the_handler() -> None:
    """S2 in memory: above the write buffer's high-water mark the connection stops reading."""
    conn = drive(Upper)
    conn.transport.set_write_buffer_size(10**6)
    assert conn.transport.reading_paused
    conn.feed(b"held\n")
    assert conn.output() == b""  # held in the "kernel" while reading is paused
    conn.transport.set_write_buffer_size(0)
    assert not conn.transport.reading_paused
    assert await conn.replies() == ["HELD"]


async def test_more_clients_of_one_server_and_graceful_stop() -> None:
    """server.connect() adds clients; stop() closes the idle ones and runs finish()."""
    finished: list[str] = []

    class Tracked(LineHandler):
        def handle_line(self, line: str) -> str:
            return line

        def finish(self) -> None:
            finished.append(self.peer[0])

    first = drive(Tracked)
    second = first.server.connect(("127.0.0.2", 40001))
    assert first.server.stats.connections_active == 2
    assert second.handler.peer == ("127.0.0.2", 40001)
    await first.server.stop()
    assert sorted(finished) == ["127.0.0.1", "127.0.0.2"]
    assert first.closed
    assert second.closed


async def test_fake_transport_records_and_reports() -> None:
    """FakeTransport on its own: writes, extra info, close calls connection_lost soon."""
    lost = asyncio.Event()

    class Proto(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            lost.set()

    transport = FakeTransport(Proto(), peername=("::1", 5, 0, 0))
    transport.write(b"a")
    transport.writelines([b"b", b"c"])
    assert transport.data == b"abc"
    assert transport.writes == [b"a", b"bc"]
    assert transport.get_extra_info("peername") == ("::1", 5, 0, 0)
    assert transport.get_extra_info("sockname") == ("127.0.0.1", 9999)
    transport.abort()
    assert transport.aborted
    assert transport.is_closing()
    await asyncio.wait_for(lost.wait(), 5)


async def test_a_nonsense_batch_size_is_a_configuration_error() -> None:
    """lines_per_batch < 1 would never handle a line: refused, naming the setting."""

    class Stuck(Upper):
        lines_per_batch = 0

    with pytest.raises(ConfigurationError, match="lines_per_batch"):
        drive(Stuck)


# -- the quiescent signal ------------------------------------------------------------


class Gated(LineHandler):
    """``wait`` suspends until the test opens the gate; anything else is echoed."""

    gate: asyncio.Event

    async def handle_line(self, line: str) -> str:
        if line == "wait":
            await self.gate.wait()
        return line


async def test_a_line_connection_is_quiescent_only_with_nothing_left_to_do() -> None:
    """The public signal the kit waits on: not while a handler coroutine runs (nor
    while the lines behind it wait), again once it is done; wait_quiescent() returns
    then, not before."""
    Gated.gate = asyncio.Event()
    conn = drive(Gated)
    assert conn.protocol.quiescent
    assert conn.quiescent
    conn.feed(b"wait\nafter\n")
    assert not conn.protocol.quiescent  # suspended on the gate
    waiting = asyncio.create_task(conn.protocol.wait_quiescent())
    await asyncio.sleep(0)
    assert not waiting.done()
    Gated.gate.set()
    await asyncio.wait_for(waiting, 5)
    assert conn.protocol.quiescent
    assert conn.output() == b"wait\nafter\n"  # the held line was handled on the way


async def test_a_batch_waiting_for_its_turn_is_not_quiescent() -> None:
    """Lines beyond lines_per_batch wait for the loop's next turn: not quiescent until
    all are handled."""

    class Small(Upper):
        lines_per_batch = 2

    conn = drive(Small)
    conn.feed(b"a\nb\nc\nd\ne\n")
    assert not conn.protocol.quiescent
    await conn.protocol.wait_quiescent()
    assert conn.output() == b"A\nB\nC\nD\nE\n"


class Reader(StreamHandler):
    """Reads with readline() (which may wait again without returning), echoes, and
    with ``hold`` waits on something that is not input."""

    gate: asyncio.Event

    async def handle(self) -> None:
        while line := await self.reader.readline():
            if line == b"hold\n":
                await self.gate.wait()
            self.writer.write(line.upper())


async def test_a_stream_connection_is_quiescent_while_it_waits_for_input() -> None:
    """A stream handler waiting in a read for input it has not seen is quiescent, even
    on a partial line; fed input, it is not until it had its turn; waiting on
    anything else (or running) it is not; a finished handler is."""
    Reader.gate = asyncio.Event()
    conn = drive(Reader)
    await conn.settled()
    assert conn.protocol.quiescent
    conn.feed(b"par")
    assert not conn.protocol.quiescent  # fed, not yet looked at
    await conn.settled()
    assert conn.protocol.quiescent  # woke, found no newline, waits again
    assert conn.output() == b""
    conn.feed(b"t\nhold\n")
    assert await conn.replies(1) == ["PART"]
    assert not conn.protocol.quiescent  # waiting on the gate, not on input
    Reader.gate.set()
    await conn.settled()
    assert conn.output() == b"HOLD\n"
    conn.feed_eof()
    await conn.wait_closed()
    assert conn.protocol.quiescent


async def test_input_held_by_the_transport_is_not_quiescent_until_delivered() -> None:
    """The driven connection adds its transport: input waiting to be delivered after
    resume_reading() is work left to do."""
    conn = drive(Upper)
    conn.transport.pause_reading()
    conn.feed(b"held\n")
    assert conn.transport.holding
    assert conn.quiescent  # reading paused: nothing can happen until it resumes
    conn.transport.resume_reading()
    assert not conn.quiescent  # the delivery is scheduled
    await conn.settled()
    assert not conn.transport.holding
    assert conn.output() == b"HELD\n"


# -- the fake clock ---------------------------------------------------------------


def test_fake_clock_runs_what_falls_due_in_order() -> None:
    """Time moves only with advance(); due calls run in time order, each at its time,
    including calls they schedule; cancelled ones do not run."""
    clock = FakeClock(100.0)
    ran: list[tuple[str, float]] = []

    def note(name: str) -> None:
        ran.append((name, clock.time()))

    clock.call_later(2, note, "b")
    clock.call_at(101, note, "a")
    clock.call_later(3, note, "cancelled").cancel()
    clock.call_later(1.5, lambda: clock.call_later(0.2, note, "chained"))
    assert clock.pending == 3
    clock.advance(0.5)
    assert ran == []
    clock.advance(2)
    assert ran == [("a", 101.0), ("chained", 101.7), ("b", 102.0)]
    assert clock.time() == 102.5
    assert clock.pending == 0
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)


def test_fake_clock_refuses_to_spin_forever_at_one_instant() -> None:
    """A call that keeps scheduling itself for now would hang advance(): an error
    naming it instead."""
    clock = FakeClock()

    def again() -> None:
        clock.call_later(0, again)

    clock.call_later(1, again)
    with pytest.raises(RuntimeError, match=r"keep scheduling calls at 1\.0"):
        clock.advance(2)


@pytest.mark.timeout(10)
async def test_a_60_s_idle_timeout_costs_no_time_with_a_fake_clock() -> None:
    """The sweep runs on the kit's clock: not closed a moment early, closed within two
    ticks after, and at no cost in real time."""
    clock = FakeClock()
    conn = drive(Upper, clock=clock, idle_timeout=60)
    started = time.monotonic()
    clock.advance(59.9)
    conn.feed(b"still here\n")  # activity moves the idle clock
    assert await conn.replies() == ["STILL HERE"]
    clock.advance(59.9)
    await conn.settled()
    assert not conn.closed
    clock.advance(2 * conn.server.deadlines.resolution)
    await conn.wait_closed()
    assert conn.server.stats.connections_timed_out == 1
    assert time.monotonic() - started < 5


async def test_the_line_and_write_timeouts_run_on_the_fake_clock() -> None:
    """S9 and S2 without waiting: a partial line past line_timeout is closed, and a
    peer that stopped reading past write_timeout is aborted."""
    clock = FakeClock()
    partial = drive(Upper, clock=clock, line_timeout=30, idle_timeout=300)
    partial.feed(b"no newline")
    clock.advance(30 + 2 * partial.server.deadlines.resolution)
    await partial.wait_closed()
    assert not partial.transport.aborted

    clock = FakeClock()
    stuck = drive(Upper, clock=clock, write_timeout=10)
    stuck.transport.set_write_buffer_size(10**6)  # the peer stopped reading
    clock.advance(10 + 2 * stuck.server.deadlines.resolution)
    await stuck.wait_closed()
    assert stuck.transport.aborted


async def test_the_linger_after_a_protocol_error_runs_on_the_fake_clock() -> None:
    """S1: after the error reply the connection drains the peer for 2 s, then aborts:
    at clock.advance(2), not in real time."""

    class Short(Upper):
        max_line_length = 8

    clock = FakeClock()
    conn = drive(Short, clock=clock)
    conn.feed(b"x" * 20)
    assert conn.output().startswith(b"error: line too long")
    assert conn.transport.eof_written
    clock.advance(1.9)
    await conn.settled()
    assert not conn.closed
    conn.feed(b"more from a peer that does not stop\n")  # drained, never handled
    clock.advance(0.1)
    await conn.wait_closed()
    assert conn.transport.aborted
    assert conn.output() == b""


async def test_the_clock_cannot_change_under_a_running_sweep() -> None:
    """Deadlines stamped on one clock mean nothing on another."""
    conn = drive(Upper, clock=FakeClock(), idle_timeout=60)
    with pytest.raises(StateError, match="clock"):
        conn.server.deadlines.clock = FakeClock()
