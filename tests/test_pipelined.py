"""Pipelined lines on the LineHandler path: the lines of one read are split at once, their
replies leave in one write, in order, with every limit and timeout of the line path."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from asyncnet import LineHandler, tcp_server
from asyncnet.demos.upper import Upper
from asyncnet.testing import FakeClock, drive

pytestmark = pytest.mark.all_loops

ROOT = Path(__file__).resolve().parents[1]
KIB_LINE = b"x" * 1023 + b"\n"


async def test_the_replies_to_one_read_leave_in_one_write() -> None:
    conn = drive(Upper)
    conn.feed(KIB_LINE * 32)
    assert conn.transport.writes == [KIB_LINE.upper() * 32]


async def test_a_lone_request_is_answered_at_once() -> None:
    """No waiting for company: the reply is written within the read that brought it."""
    conn = drive(Upper)
    conn.feed(b"alone\n")
    assert conn.transport.writes == [b"ALONE\n"]  # no loop turn in between
    conn.feed(b"again\n")
    assert conn.transport.writes == [b"ALONE\n", b"AGAIN\n"]


async def test_lines_split_across_reads_keep_their_order() -> None:
    conn = drive(Upper)
    conn.feed(b"a\nb\nc")
    assert conn.transport.writes == [b"A\nB\n"]
    conn.feed(b"d\ne\r")  # a CRLF split across reads is still one delimiter
    conn.feed(b"\nlast\r\n")
    assert conn.output() == b"A\nB\nCD\nE\nLAST\n"
    conn.feed_eof()
    await conn.wait_closed()


async def test_crlf_and_non_ascii_lines_in_one_read() -> None:
    """CRLF is stripped as on the one-line path; UTF-8 text is upper-cased as text."""
    conn = drive(Upper)
    conn.feed("grüße\r\nstraße\nplain\r\n".encode())
    assert conn.output() == "GRÜSSE\nSTRASSE\nPLAIN\n".encode()


async def test_invalid_utf8_among_pipelined_lines_answers_the_lines_before_it() -> None:
    conn = drive(Upper)
    conn.feed(b"one\ntwo\n\xff\xfe\nthree\n")
    await conn.wait_closed()
    out = conn.output()
    assert out.startswith(b"ONE\nTWO\nerror: invalid utf-8")
    assert b"THREE" not in out
    assert conn.server.stats.protocol_errors == 1


async def test_an_over_long_line_among_pipelined_lines_is_refused_in_its_turn() -> None:
    """S1: the lines before it are answered first; the long line and what follows never
    reach the handler."""
    seen: list[str] = []

    class Short(Upper):
        max_line_length = 16

        def handle_line(self, line: str) -> str | None:
            seen.append(line)
            return super().handle_line(line)

    conn = drive(Short)
    conn.feed(b"ok\n" + b"y" * 40 + b"\nQUIT\n")
    await conn.wait_closed()
    assert seen == ["ok"]
    assert conn.output().startswith(b"OK\nerror: line too long")


async def test_an_over_long_partial_line_after_whole_ones_is_refused() -> None:
    """S1, the tail of a read: the start of a line over the limit is refused once it is
    over, even when it arrives behind whole lines."""

    class Short(Upper):
        max_line_length = 16

    conn = drive(Short)
    conn.feed(b"ok\n" + b"z" * 10)
    assert conn.output() == b"OK\n"
    conn.feed(b"z" * 10)
    await conn.wait_closed()
    assert b"line too long" in conn.output()


async def test_a_partial_line_after_whole_ones_still_times_out() -> None:
    """S9: the start of a line kept after a read's whole lines runs the line timeout."""
    clock = FakeClock()
    conn = drive(Upper, clock=clock, line_timeout=30, idle_timeout=300)
    conn.feed(b"done\nnever fini")
    assert conn.output() == b"DONE\n"
    clock.advance(30 + 2 * conn.server.deadlines.resolution)
    await conn.wait_closed()
    assert conn.server.stats.connections_timed_out == 1


async def test_a_partial_line_completed_in_time_resets_the_line_clock() -> None:
    clock = FakeClock()
    conn = drive(Upper, clock=clock, line_timeout=30, idle_timeout=300)
    conn.feed(b"a\npart")
    clock.advance(20)
    conn.feed(b"ial\n")
    clock.advance(20)
    await conn.settled()
    assert not conn.closed
    assert conn.output() == b"A\nPARTIAL\n"


async def test_end_of_input_hands_over_the_last_unterminated_line() -> None:
    """S4: a final line without newline is handled at end of input, after the others."""
    conn = drive(Upper)
    conn.feed(b"first\nsecond\nthird")
    conn.feed_eof()
    await conn.wait_closed()
    assert conn.output() == b"FIRST\nSECOND\nTHIRD\n"


class Gated(LineHandler):
    """``wait`` suspends until the test opens the gate; anything else is upper-cased."""

    gate: asyncio.Event

    async def handle_line(self, line: str) -> str:
        if line == "wait":
            await self.gate.wait()
        return line.upper()


async def test_a_suspended_handler_holds_the_rest_of_the_read_and_its_tail() -> None:
    Gated.gate = asyncio.Event()
    conn = drive(Gated)
    conn.feed(b"a\nwait\nb\nc\npart")
    assert conn.output() == b"A\n"
    conn.feed(b"ial\n")  # arrives while the handler waits: held back, not handled
    assert conn.output() == b""
    Gated.gate.set()
    assert await conn.replies() == ["WAIT", "B", "C", "PARTIAL"]


async def test_lines_held_behind_a_suspended_handler_are_answered_without_a_tail() -> None:
    """A read of whole lines only (nothing left to buffer): the lines after the one
    whose handler suspends are held, and answered in order once it is done."""
    Gated.gate = asyncio.Event()
    conn = drive(Gated)
    conn.feed(b"a\nwait\nb\nc\n")
    assert conn.output() == b"A\n"
    Gated.gate.set()
    assert await conn.replies() == ["WAIT", "B", "C"]


class Noisy(LineHandler):
    """send_line() in the middle of a batch: the notice goes after earlier replies."""

    def handle_line(self, line: str) -> str:
        if line == "note":
            self.send_line("-- notice --")
        return line.upper()


async def test_a_line_sent_while_handling_keeps_its_place_among_the_replies() -> None:
    conn = drive(Noisy)
    conn.feed(b"a\nb\nnote\nc\n")
    assert conn.output() == b"A\nB\n-- notice --\nNOTE\nC\n"


class Closer(LineHandler):
    def handle_line(self, line: str) -> str:
        if line == "bye":
            self.close()
        return line.upper()


async def test_close_mid_batch_answers_that_line_and_no_later_one() -> None:
    conn = drive(Closer)
    conn.feed(b"a\nbye\nnot this\n")
    await conn.wait_closed()
    assert conn.output() == b"A\nBYE\n"


async def test_pipelined_kib_lines_over_a_real_socket() -> None:
    """The bench's pipelined shape end to end: 1 KiB lines, 32 in flight, 10 clients."""

    async def client(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(20):
                writer.write(KIB_LINE * 32)
                assert await reader.readexactly(len(KIB_LINE) * 32) == KIB_LINE.upper() * 32
        finally:
            writer.close()
            await writer.wait_closed()

    async with tcp_server(Upper) as server:
        async with asyncio.timeout(30), asyncio.TaskGroup() as group:
            for _ in range(10):
                group.create_task(client(server.address[1]))
    assert server.stats.handler_errors == 0
    assert server.stats.protocol_errors == 0


@pytest.mark.timeout(60)
async def test_the_bench_generator_pipelines_against_the_demo() -> None:
    """benchmarks.loadgen's pipelined mode: replies counted, checked, none lost."""
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.loadgen import tcp_pipelined
    finally:
        sys.path.remove(str(ROOT))
    async with tcp_server(Upper) as server:
        result = await tcp_pipelined(
            "127.0.0.1", server.address[1], 3, 8, duration=0.3, warmup=0.05, size=256
        )
    assert result["mode"] == "pipelined"
    assert result["errors"] == 0
    assert result["connected"] == 3
    assert result["rps"] > 0
    assert result["served"] == 3


def test_the_pipelined_generator_refuses_a_line_of_nothing() -> None:
    """--size 1 would be a newline alone: one line of usage, exit 2."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.loadgen", "pipelined", "--port", "1", "--size", "1"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert "--size" in done.stderr
    assert "Traceback" not in done.stderr
