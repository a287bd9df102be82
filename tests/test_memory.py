"""asyncnet._memory: handlers driven without sockets, with the real connection classes."""

from __future__ import annotations

import asyncio

import pytest

from asyncnet import CommandHandler, ConfigurationError, LineHandler
from asyncnet._memory import FakeTransport, drive
from asyncnet.demos.upper import Upper
from asyncnet.servers import FramedHandler


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
