"""Faults and bad input against the stream server (RELIABILITY.md S1-S9)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time

import pytest

from asyncnet import LineClient, LineHandler, StreamHandler, tcp_server
from asyncnet.demos.upper import Upper

from .helpers import read_all, wait_until

pytestmark = pytest.mark.all_loops


class Recorder(LineHandler):
    """Upper-cases and records every line it is given (class-wide, per test)."""

    max_line_length = 1024
    seen: list[str] = []

    def handle_line(self, line: str) -> str:
        self.seen.append(line)
        return line.upper()


@pytest.fixture
def recorder() -> type[Recorder]:
    class Fresh(Recorder):
        seen: list[str] = []

    return Fresh


async def test_overlong_line_closes_without_resync(recorder: type[Recorder]) -> None:
    """S1: 3000 bytes without a delimiter in two segments, then QUIT: QUIT is never handled."""
    async with tcp_server(recorder) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"hello\n" + b"A" * 1500)
        # The reply to "hello" shows the server has read the whole first segment (one
        # send on loopback): the 1500 bytes after it are buffered as a partial line.
        assert await asyncio.wait_for(reader.readline(), 5) == b"HELLO\n"
        assert server.stats.bytes_in == 1506
        try:
            writer.write(b"B" * 1500 + b"\nQUIT\n")
            await writer.drain()
        except ConnectionError:
            pass  # the server may already have closed: that is the point
        data = await read_all(reader)
        assert data.startswith(b"error: line too long")
        assert recorder.seen == ["hello"]  # neither the tail nor QUIT came through
        assert server.stats.protocol_errors == 1
        writer.close()
        # the server keeps serving
        async with await LineClient.connect(*server.address) as client:
            assert await client.request("next") == "NEXT"


async def test_one_mib_line_without_delimiter_is_refused_with_bounded_memory() -> None:
    """S1: a 1 MiB line (64 KiB limit) gets an error and a closed connection."""
    async with tcp_server(Upper) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"x" * (1 << 20))
        with contextlib.suppress(ConnectionError):  # the server may have closed already
            await writer.drain()
        data = await read_all(reader)
        assert data.startswith(b"error: line too long")
        # it was refused long before 1 MiB was buffered
        assert server.stats.protocol_errors == 1
        writer.close()


async def test_line_of_exactly_max_length_with_split_crlf_is_accepted(
    recorder: type[Recorder],
) -> None:
    """S1 (split-CRLF boundary, Twisted's test_maximumLineLengthPartialDelimiter)."""
    async with tcp_server(recorder) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        line = b"m" * 1024
        writer.write(line + b"\r")
        # Nothing answers a partial line: the server's byte count is the only sign that
        # it has read the first segment, and the read path has no event for it.
        await wait_until(lambda: server.stats.bytes_in >= 1025)
        writer.write(b"\n")
        assert await reader.readline() == line.upper() + b"\n"
        assert recorder.seen == ["m" * 1024]
        writer.write(b"m" * 1025 + b"\n")  # one more byte is one too many
        assert (await read_all(reader)).startswith(b"error: line too long")
        writer.close()


async def test_non_reading_peer_is_bounded_then_aborted() -> None:
    """S2: a peer that never reads: buffer bounded, aborted after write_timeout, others fine."""
    chunk = b"z" * 65536
    buffered: list[int] = []

    class Firehose(StreamHandler):
        async def handle(self) -> None:
            await self.readline()
            for _ in range(1000):  # bounded: 64 MiB at most
                self.writer.write(chunk)
                buffered.append(self.writer.transport.get_write_buffer_size())
                await self.writer.drain()

    async with tcp_server(Firehose, write_timeout=0.3) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, server.address)
        await asyncio.get_running_loop().sock_sendall(sock, b"go\n")
        try:
            await server.events.wait_for(lambda: server.stats.connections_timed_out == 1, timeout=5)
            # bounded: never more than the high-water mark plus one chunk
            assert max(buffered) <= server.write_buffer_high + len(chunk)
            await server.events.wait_idle(timeout=5)
        finally:
            sock.close()


async def test_non_reading_peer_of_a_line_handler_stops_being_read() -> None:
    """S2 (line path): lines keep coming, replies are not read: reading pauses, then abort."""
    async with tcp_server(Upper, write_timeout=0.3, write_buffer_high=4096) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, server.address)
        line = b"q" * 1000 + b"\n"
        try:
            with pytest.raises((TimeoutError, ConnectionError)):
                async with asyncio.timeout(3):
                    for _ in range(100_000):  # bounded
                        await loop.sock_sendall(sock, line)
            await server.events.wait_for(lambda: server.stats.connections_timed_out == 1, timeout=5)
            async with await LineClient.connect(*server.address) as other:
                assert await other.request("still here") == "STILL HERE"
        finally:
            sock.close()


async def test_peer_reset_mid_reply_is_cleaned_up_quietly() -> None:
    """S3: the client RSTs while the server writes; no loop errors, count back to 0."""
    started = asyncio.Event()

    class Big(StreamHandler):
        async def handle(self) -> None:
            await self.readline()
            started.set()
            for _ in range(200):
                self.writer.write(b"y" * 65536)
                await self.writer.drain()

    async with tcp_server(Big) as server:
        sock = socket.socket()
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, server.address)
        await loop.sock_sendall(sock, b"go\n")
        await started.wait()
        await loop.sock_recv(sock, 1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST
        await server.events.wait_idle(timeout=5)
    assert server.stats.handler_errors == 0


async def test_half_close_returns_promptly_without_busy_loop() -> None:
    """S4: request then write_eof(): full response, handler done fast, CPU idle."""
    async with tcp_server(Upper) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        cpu = time.process_time()
        writer.write(b"a\nb\n")
        writer.write_eof()
        assert await read_all(reader) == b"A\nB\n"
        await server.events.wait_idle(timeout=1)
        assert time.process_time() - cpu < 0.5
        writer.close()


async def test_handler_that_raises_is_logged_once_and_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S5: the failing connection is closed, logged once with its peer; others are served."""

    class Fragile(LineHandler):
        def handle_line(self, line: str) -> str:
            if line == "boom":
                raise ValueError("boom requested")
            return line.upper()

    caplog.set_level(logging.ERROR, logger="asyncnet")
    async with tcp_server(Fragile) as server:
        async with await LineClient.connect(*server.address) as bystander:
            reader, writer = await asyncio.open_connection(*server.address)
            local = writer.get_extra_info("sockname")
            writer.write(b"ok\nboom\nafter\n")
            assert await read_all(reader) == b"OK\n"
            writer.close()
            assert await bystander.request("still served") == "STILL SERVED"
        async with await LineClient.connect(*server.address) as later:
            assert await later.request("next") == "NEXT"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert f"127.0.0.1:{local[1]}" in errors[0].getMessage()
    assert errors[0].exc_info is not None
    assert server.stats.handler_errors == 1


async def test_async_handler_that_raises_after_suspending() -> None:
    """S5 (eager path): the exception arrives through the task, same outcome."""

    class Late(LineHandler):
        async def handle_line(self, line: str) -> str:
            await asyncio.sleep(0)
            raise RuntimeError("late failure")

    async with tcp_server(Late) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"x\n")
        assert await read_all(reader) == b""
        writer.close()
    assert server.stats.handler_errors == 1


async def test_max_connections_refuses_cleanly() -> None:
    async with tcp_server(Upper, max_connections=2) as server:
        a = await LineClient.connect(*server.address)
        b = await LineClient.connect(*server.address)
        assert await a.request("a") == "A"
        assert await b.request("b") == "B"
        reader, writer = await asyncio.open_connection(*server.address)
        assert await read_all(reader) == b"error: server busy, try again later\n"
        writer.close()
        assert server.stats.connections_refused == 1
        await a.stop()
        await server.events.wait_for(lambda: server.stats.connections_active == 1, timeout=5)
        async with await LineClient.connect(*server.address) as c:
            assert await c.request("c") == "C"
        await b.stop()


async def test_silent_client_is_closed_after_idle_timeout() -> None:
    async with tcp_server(Upper, idle_timeout=0.2) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        started = time.monotonic()
        assert await read_all(reader, timeout=3) == b""
        assert time.monotonic() - started >= 0.15
        assert server.stats.connections_timed_out == 1
        writer.close()


async def test_slowloris_is_closed_after_line_timeout() -> None:
    """S9: one byte at a time, never a newline: closed after line_timeout; others unaffected."""
    async with tcp_server(Upper, line_timeout=0.3, idle_timeout=30) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        started = time.monotonic()

        async def dribble() -> None:
            for _ in range(40):  # bounded: 2 s at most
                writer.write(b"s")
                await asyncio.sleep(0.05)  # the attack itself, not a readiness wait

        dribbler = asyncio.create_task(dribble())
        async with await LineClient.connect(*server.address) as other:
            assert await other.request("fine") == "FINE"
        assert await read_all(reader, timeout=3) == b""
        assert time.monotonic() - started < 1.0
        dribbler.cancel()
        writer.close()
    assert server.stats.connections_timed_out == 1


async def test_handler_hooks_setup_and_finish_run_once_per_connection() -> None:
    events: list[str] = []

    class Hooked(Upper):
        def setup(self) -> None:
            events.append(f"setup {self.peer[0]}")

        def finish(self) -> None:
            events.append("finish")

    async with tcp_server(Hooked) as server:
        async with await LineClient.connect(*server.address) as client:
            await client.request("x")
        await server.events.wait_idle(timeout=5)
    assert events == ["setup 127.0.0.1", "finish"]


async def test_stream_handler_readline_refuses_overlong_line_without_resync() -> None:
    """S1 (stream path): StreamHandler.readline() raises LineTooLong; the tail is never read."""
    lines: list[bytes] = []

    class Lines(StreamHandler):
        max_line_length = 1024

        async def handle(self) -> None:
            while line := await self.readline():
                lines.append(line)
                self.writer.write(line.upper())

    async with tcp_server(Lines) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"ok\n" + b"A" * 3000 + b"\nQUIT\n")
        assert await read_all(reader) == b"OK\n"
        writer.close()
        await server.events.wait_for(lambda: server.stats.protocol_errors == 1, timeout=5)
    assert lines == [b"ok\n"]


async def test_line_client_reset_mid_reply_is_quiet() -> None:
    """S3 (line path): a pipelining client that RSTs while replies are being written."""
    async with tcp_server(Upper, write_buffer_high=1024) as server:
        sock = socket.socket()
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, server.address)
        await loop.sock_sendall(sock, (b"r" * 100 + b"\n") * 500)
        async with asyncio.timeout(5):
            assert await loop.sock_recv(sock, 1) == b"R"  # replies are being written
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        await server.events.wait_idle(timeout=5)
    assert server.stats.handler_errors == 0
