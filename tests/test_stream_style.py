"""The StreamHandler style: ``upper --style stream``, and the reader and writer it runs on
(fed by the protocol through the line buffer, no task switch where none is needed)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from asyncnet import StreamHandler, tcp_server
from asyncnet.demos.upper import UpperStream
from asyncnet.errors import LineTooLong
from asyncnet.servers import ConnectionReader, ConnectionWriter

pytestmark = pytest.mark.all_loops

ROOT = Path(__file__).resolve().parents[1]


async def _exchange(port: int, data: bytes, *, half_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        if half_close:
            writer.write_eof()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def test_the_stream_style_serves_the_upper_service() -> None:
    """Lines come back in capitals, CRLF clients included; the blank line ends it."""
    async with tcp_server(UpperStream) as server:
        reply = await _exchange(
            server.address[1], b"hello\r\nmixed Case\n\nnot handled\n", half_close=False
        )
    assert reply == b"HELLO\nMIXED CASE\n"


async def test_the_stream_style_answers_a_last_line_without_newline() -> None:
    async with tcp_server(UpperStream) as server:
        assert await _exchange(server.address[1], b"one\ntwo") == b"ONE\nTWO\n"


async def test_pipelined_lines_in_one_segment_come_back_in_order() -> None:
    lines = b"".join(b"line %d\n" % n for n in range(500))
    async with tcp_server(UpperStream) as server:
        assert await _exchange(server.address[1], lines) == lines.upper()
    assert server.stats.bytes_in == len(lines)
    assert server.stats.bytes_out == len(lines)


@pytest.mark.timeout(30)
def test_the_demo_runs_the_stream_style_from_the_command_line() -> None:
    """``python -m asyncnet.demos.upper --style stream`` as users (and make bench) run it."""
    with subprocess.Popen(
        [sys.executable, "-m", "asyncnet.demos.upper", "--port", "0", "--style", "stream"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            ready = proc.stdout.readline()  # the ready line: listening, with the real port
            assert "tcp://127.0.0.1:" in ready, ready
            port = int(ready.split("tcp://127.0.0.1:")[1].split()[0])
            assert asyncio.run(_exchange(port, b"from the cli\n")) == b"FROM THE CLI\n"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_a_bad_style_is_one_line_and_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "asyncnet.demos.upper", "--style", "threads"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert "--style" in done.stderr
    assert "Traceback" not in done.stderr


class Probe(StreamHandler):
    """Records, per step, whether the event loop ran a callback scheduled just before:
    if it did, the step suspended the task."""

    steps: list[tuple[str, bool]]

    def setup(self) -> None:
        type(self).steps = []

    async def _step(self, name: str, awaitable: object) -> object:
        ran = asyncio.Event()
        asyncio.get_running_loop().call_soon(ran.set)
        result = await awaitable  # type: ignore[misc]
        self.steps.append((name, ran.is_set()))
        return result

    async def handle(self) -> None:
        assert isinstance(self.reader, ConnectionReader)
        assert isinstance(self.writer, ConnectionWriter)
        first = await self.readline()  # waits for the peer: a switch, whatever we do
        second = await self._step("buffered readline", self.readline())
        self.writer.write(first + second)  # type: ignore[operator]
        await self._step("drain below the high-water mark", self.writer.drain())
        await self.readline()  # the end of input


async def test_a_buffered_line_and_an_unblocked_drain_cost_no_task_switch() -> None:
    """readline() with a line already buffered, and drain() below the high-water mark,
    return without suspending: no per-line task switch where none is needed."""
    async with tcp_server(Probe) as server:
        assert await _exchange(server.address[1], b"a\nb\n") == b"a\nb\n"
    assert Probe.steps == [
        ("buffered readline", False),
        ("drain below the high-water mark", False),
    ]


class LineThenBody(StreamHandler):
    """A header line announcing a length, then that many raw bytes (no newline in them)."""

    async def handle(self) -> None:
        while header := await self.readline():
            size = int(header)
            body = await self.reader.readexactly(size)
            self.writer.write(b"%d %d\n" % (len(body), body.count(b"y")))
            await self.writer.drain()


async def test_raw_bytes_after_a_line_have_no_line_limit() -> None:
    """A body longer than max_line_length after a line is read raw, not refused as an
    over-long line, however the reads fall."""

    class Small(LineThenBody):
        max_line_length = 100

    body = b"y" * 5000
    async with tcp_server(Small) as server:
        reply = await _exchange(server.address[1], b"5000\n" + body + b"10\n" + b"y" * 10)
    assert reply == b"5000 5000\n10 10\n"
    assert server.stats.protocol_errors == 0


class Echo(StreamHandler):
    max_line_length = 64

    async def handle(self) -> None:
        try:
            while line := await self.readline():
                self.writer.write(line)
        except LineTooLong:
            self.writer.write(b"too long\n")
            try:
                await self.readline()
            except LineTooLong:
                self.writer.write(b"still too long\n")
            raise


async def test_an_over_long_line_is_refused_and_stays_refused() -> None:
    """The line before it is answered; the rest of the long line is never a line."""
    async with tcp_server(Echo) as server:
        reply = await _exchange(server.address[1], b"short\n" + b"x" * 200 + b"\ntail\n")
    assert reply == b"short\ntoo long\nstill too long\n"
    assert server.stats.protocol_errors == 1


class ReaderAPI(StreamHandler):
    """The asyncio.StreamReader methods users call on self.reader."""

    async def handle(self) -> None:
        reader = self.reader
        got = [await reader.readuntil(b";"), await reader.read(3)]
        got += [line async for line in reader]
        assert reader.at_eof()
        self.writer.write(b"|".join(got))
        await self.writer.drain()


async def test_the_reader_has_the_stream_reader_methods() -> None:
    async with tcp_server(ReaderAPI) as server:
        reply = await _exchange(server.address[1], b"a;bcdline 1\nline 2")
    assert reply == b"a;|bcd|line 1\n|line 2"


class ReadAll(StreamHandler):
    async def handle(self) -> None:
        try:
            await self.reader.readuntil(b"END")
        except asyncio.IncompleteReadError as exc:
            self.writer.write(b"partial=" + exc.partial)
        await self.writer.drain()


async def test_readuntil_reports_input_that_ends_first() -> None:
    async with tcp_server(ReadAll) as server:
        assert await _exchange(server.address[1], b"no end") == b"partial=no end"


class Batch(StreamHandler):
    """Pipelined lines, read and answered one at a time without draining."""

    lines_per_batch = 4

    async def handle(self) -> None:
        while line := await self.readline():
            self.writer.write(line)


async def test_buffered_lines_beyond_a_batch_still_all_arrive() -> None:
    """lines_per_batch lets other connections run between batches; nothing is lost."""
    lines = b"".join(b"%d\n" % n for n in range(50))
    async with tcp_server(Batch) as server:
        results = await asyncio.gather(*(_exchange(server.address[1], lines) for _ in range(5)))
    assert results == [lines] * 5


def test_the_bench_row_runs_the_demo_command() -> None:
    """make bench's asyncnet-stream row is the demo as users run it, and the plain
    asyncio streams server runs on uvloop too for the comparison."""
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.harness import IMPLEMENTATIONS
    finally:
        sys.path.remove(str(ROOT))
    row = IMPLEMENTATIONS["asyncnet-stream"]
    assert row.tcp[:2] == ("-m", "asyncnet.demos.upper")
    assert row.tcp[-2:] == ("--style", "stream")
    assert IMPLEMENTATIONS["streams-uvloop"].tcp[-2:] == ("streams", "--uvloop")
