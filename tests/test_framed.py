"""FramedHandler and FramedClient: asynchat's set_terminator over real loopback sockets."""

from __future__ import annotations

import asyncio
import logging
import struct

import pytest

from asyncnet import tcp_server
from asyncnet.clients import FramedClient
from asyncnet.errors import (
    FrameTooLarge,
    IncompleteFrame,
    LocalProtocolError,
    NetworkError,
    OperationTimeout,
    PeerProtocolError,
)
from asyncnet.protocols import ByteCount, Delimiter, LengthPrefix, encode_frame
from asyncnet.servers._framed import FramedHandler, FrameTimeout

from .helpers import read_all

# A pseudo-random but fixed stream of garbage: every byte value, no delimiter-free luck.
GARBAGE = bytes((i * 7919 + 13) % 256 for i in range(5000))


class Upload(FramedHandler):
    """Header lines, a blank line, then Content-Length bytes; replies with a summary.

    The asynchat use case: switch from a delimiter to a byte count mid-connection,
    then back to lines for the next request on the same connection.
    """

    max_frame_size = 1024
    seen: list[object]

    def setup(self) -> None:
        self.seen = []
        self.server.seen = self.seen  # type: ignore[attr-defined]

    async def handle(self) -> None:
        while True:
            headers: dict[bytes, bytes] = {}
            while line := await self.read_frame():
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if line is None:
                return  # clean end of input between requests
            length = int(headers.get(b"content-length", b"0"))
            try:
                self.set_terminator(ByteCount(length))
            except FrameTooLarge:
                await self.send_frame(b"413 body too large")
                return
            try:
                body = await self.read_frame()
            except IncompleteFrame as exc:
                self.seen.append(exc)
                raise
            self.seen.append(body)
            self.set_terminator(b"\r\n")
            shown = (body or b"").replace(b"\r\n", b"<CRLF>")
            await self.send_frame(b"200 %d bytes: %s" % (length, shown))


class PrefixEcho(FramedHandler):
    """Echoes every length-prefixed frame."""

    terminator = LengthPrefix("!H")
    max_frame_size = 100

    async def handle(self) -> None:
        async for frame in self.frames():
            await self.send_frame(frame, LengthPrefix("!H"))


class Lines(FramedHandler):
    """Answers each CRLF line with its length; frames over 64 bytes are a peer error."""

    max_frame_size = 64
    frame_timeout = 0.3

    async def handle(self) -> None:
        async for line in self.frames():
            await self.send_frame(b"%d" % len(line))


async def open_raw(address: tuple[str, int]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(*address), 5)


# -- switching terminators ---------------------------------------------------------------


REQUEST = b"PUT /x\r\nContent-Length: 12\r\nX-Other: y\r\n\r\nhello\r\nworld"


@pytest.mark.all_loops
@pytest.mark.parametrize("chunk", [1, 3, 7, len(REQUEST)])
async def test_headers_then_content_length_body_any_chunking(chunk: int) -> None:
    """Lines, then a byte count whose body contains CRLF, then lines again."""
    async with tcp_server(Upload) as server:
        reader, writer = await open_raw(server.address)
        for data in (REQUEST, b"Content-Length: 3\r\n\r\nabc"):
            for i in range(0, len(data), chunk):
                writer.write(data[i : i + chunk])
                await writer.drain()
        writer.write_eof()
        replies = await read_all(reader)
        writer.close()
    assert replies == b"200 12 bytes: hello<CRLF>world\r\n200 3 bytes: abc\r\n"
    assert server.seen == [b"hello\r\nworld", b"abc"]  # type: ignore[attr-defined]
    assert server.stats.protocol_errors == 0


async def test_body_in_same_packet_as_headers_is_reparsed_under_byte_count() -> None:
    async with tcp_server(Upload) as server:
        async with await FramedClient.connect(*server.address, timeout=5) as client:
            client.writer.write(b"Content-Length: 4\r\n\r\n\r\n\r\n")  # body is two CRLFs
            assert await client.read_frame() == b"200 4 bytes: <CRLF><CRLF>"


async def test_length_prefixed_frames_round_trip() -> None:
    async with tcp_server(PrefixEcho) as server:
        async with await FramedClient.connect(
            *server.address, terminator=LengthPrefix("!H"), max_frame_size=100, timeout=5
        ) as client:
            for frame in (b"", b"x", b"\r\n", bytes(range(100))):
                assert await client.request(frame) == frame
            client.writer.write(struct.pack("!H", 3) + b"abc" + struct.pack("!H", 1) + b"z")
            assert await client.read_frame() == b"abc"
            assert await client.read_frame() == b"z"


async def test_readline_goes_through_the_framer() -> None:
    """Mixing readline() and read_frame() never loses bytes the framer already holds."""

    class Mixed(FramedHandler):
        terminator = 3

        async def handle(self) -> None:
            first = await self.read_frame()  # 3 bytes
            line = await self.readline()
            rest = await self.read_frame()  # back to 3-byte frames
            await self.send_frame(
                b"|".join([first or b"", line.hex().encode(), rest or b""]), b"\n"
            )

    async with tcp_server(Mixed) as server:
        reader, writer = await open_raw(server.address)
        writer.write(b"abcline\nxyz")  # one packet: frame, line, frame
        writer.write_eof()
        assert await read_all(reader) == b"abc|%s|xyz\n" % b"line\n".hex().encode()
        writer.close()


# -- bad input -----------------------------------------------------------------------------


async def test_line_over_the_limit_closes_that_connection_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Frames over the limit: FrameTooLarge, logged with the peer, counted; server carries on."""
    async with tcp_server(Lines) as server:
        reader, writer = await open_raw(server.address)
        writer.write(b"ok\r\n" + b"x" * 40)
        await writer.drain()
        writer.write(b"x" * 40 + b"\r\nSMUGGLED\r\n")  # the tail must never be handled
        assert await read_all(reader) == b"2\r\n"
        writer.close()
        async with await FramedClient.connect(*server.address, timeout=5) as client:
            assert await client.request(b"still serving") == b"13"
    assert server.stats.protocol_errors == 1
    assert any(
        "frame too large" in r.getMessage() and "limit 64" in r.getMessage() for r in caplog.records
    )


async def test_garbage_bytes() -> None:
    """Binary junk: delimited pieces are just frames; an over-long piece closes the connection."""
    async with tcp_server(Lines) as server:
        reader, writer = await open_raw(server.address)
        writer.write(GARBAGE)
        replies = await read_all(reader)
        writer.close()
        expected = []
        for piece in GARBAGE.split(b"\r\n")[:-1]:
            if len(piece) > 64:
                break
            expected.append(b"%d\r\n" % len(piece))
        assert replies == b"".join(expected)
        assert server.stats.protocol_errors == 1  # the junk had a run of > 64 bytes
        async with await FramedClient.connect(*server.address, timeout=5) as client:
            assert await client.request(b"ok") == b"2"


async def test_byte_count_over_the_limit_uncaught_is_a_peer_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Careless(FramedHandler):
        max_frame_size = 10

        async def handle(self) -> None:
            header = await self.read_frame()
            self.set_terminator(int(header or b"0"))
            await self.read_frame()

    async with tcp_server(Careless) as server:
        reader, writer = await open_raw(server.address)
        writer.write(b"11\r\n")
        assert await read_all(reader) == b""
        writer.close()
        await server.events.wait_for(lambda: server.stats.protocol_errors == 1, timeout=5)
    assert server.stats.handler_errors == 0
    assert "frame too large from 127.0.0.1:" in caplog.text
    assert "11 bytes (limit 10)" in caplog.text


async def test_length_prefix_over_the_limit_is_refused_before_the_body() -> None:
    """A prefix announcing more than max_frame_size: closed at once, the body never sent."""
    async with tcp_server(PrefixEcho) as server:
        reader, writer = await open_raw(server.address)
        writer.write(struct.pack("!H", 60000))  # announces 60000 bytes, limit 100
        assert await read_all(reader) == b""
        writer.close()
        await server.events.wait_for(lambda: server.stats.protocol_errors == 1, timeout=5)


async def test_eof_mid_frame_reports_missing_bytes(caplog: pytest.LogCaptureFixture) -> None:
    """EOF in the middle of a body: IncompleteFrame saying 6 of 10 bytes are missing."""
    async with tcp_server(Upload) as server:
        reader, writer = await open_raw(server.address)
        writer.write(b"Content-Length: 10\r\n\r\nfour")
        writer.write_eof()
        assert await read_all(reader) == b""
        writer.close()
        await server.events.wait_for(lambda: server.stats.protocol_errors == 1, timeout=5)
    (error,) = server.seen  # type: ignore[attr-defined]
    assert isinstance(error, IncompleteFrame)
    assert (error.received, error.missing) == (4, 6)
    assert "needed 6 more bytes" in caplog.text


async def test_eof_mid_line_and_mid_prefix() -> None:
    async with tcp_server(Lines) as server:
        reader, writer = await open_raw(server.address)
        writer.write(b"no delimiter")
        writer.write_eof()
        assert await read_all(reader) == b""
        writer.close()
        await server.events.wait_for(lambda: server.stats.protocol_errors == 1, timeout=5)
    async with tcp_server(PrefixEcho) as server:
        reader, writer = await open_raw(server.address)
        writer.write(b"\x00")  # half a "!H" prefix
        writer.write_eof()
        assert await read_all(reader) == b""
        writer.close()
        await server.events.wait_for(lambda: server.stats.protocol_errors == 1, timeout=5)


async def test_server_shutdown_mid_frame_is_not_a_peer_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S6 for frames: a graceful stop cuts a partial frame short without blaming the peer."""
    async with tcp_server(Lines) as server:
        reader, writer = await open_raw(server.address)
        writer.write(b"ok\r\npartial")
        assert await asyncio.wait_for(reader.readline(), 5) == b"2\r\n"
        # The reply to "ok" shows the server has read the whole write: one send of 11
        # bytes on loopback is one segment, so "partial" is buffered mid-frame now.
        assert server.stats.bytes_in == 11
        await server.stop()
        assert await read_all(reader) == b""
        writer.close()
    assert server.stats.protocol_errors == 0
    assert "mid-frame" not in caplog.text


async def test_body_larger_than_the_limit_gets_a_reply_from_the_handler() -> None:
    """A Content-Length over the limit: FrameTooLarge from set_terminator, caught to reply."""
    async with tcp_server(Upload) as server:
        async with await FramedClient.connect(*server.address, timeout=5) as client:
            client.writer.write(b"Content-Length: 5000\r\n\r\n")
            assert await client.read_frame() == b"413 body too large"
            assert await client.read_frame() is None


async def test_slowloris_frame_timeout(caplog: pytest.LogCaptureFixture) -> None:
    """S9 for frames: a client dribbling a line is closed after frame_timeout."""
    caplog.set_level(logging.INFO, logger="asyncnet")
    async with tcp_server(Lines, idle_timeout=None) as server:
        loop = asyncio.get_running_loop()
        reader, writer = await open_raw(server.address)
        start = loop.time()

        async def dribble() -> None:
            for _ in range(50):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.05)  # the dribble itself, not a readiness wait

        dribbler = asyncio.create_task(dribble())
        async with await FramedClient.connect(*server.address, timeout=5) as other:
            assert await other.request(b"meanwhile") == b"9"
        assert await read_all(reader) == b""
        elapsed = loop.time() - start
        dribbler.cancel()
        writer.close()
        await server.events.wait_for(lambda: server.stats.connections_timed_out == 1, timeout=5)
    assert 0.25 < elapsed < 2.0
    assert "during frame" in caplog.text


def test_frame_timeout_is_a_timeout_and_a_peer_error() -> None:
    error = FrameTimeout(("127.0.0.1", 5), 0.3, 7)
    assert isinstance(error, TimeoutError)
    assert isinstance(error, OperationTimeout)
    assert isinstance(error, PeerProtocolError)
    assert str(error) == (
        "timed out after 0.3 s during frame with 127.0.0.1:5 (7 bytes of an unfinished frame)"
    )


async def test_send_frame_refuses_a_frame_containing_its_delimiter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Careless(FramedHandler):
        async def handle(self) -> None:
            await self.send_frame(b"two\r\nlines")

    caplog.set_level(logging.ERROR, "asyncnet")
    async with tcp_server(Careless) as server:
        reader, writer = await open_raw(server.address)
        assert await read_all(reader) == b""  # nothing half-written
        writer.close()
        await server.events.wait_for(lambda: server.stats.handler_errors == 1, timeout=5)
    assert "LocalProtocolError" in caplog.text


def test_encode_frame_shorthand() -> None:
    assert encode_frame(b"\n", b"a") == b"a\n"
    assert encode_frame(3, b"abc") == b"abc"
    assert encode_frame(LengthPrefix("!H"), b"ab") == b"\x00\x02ab"
    assert encode_frame(Delimiter(b"\r\n"), b"") == b"\r\n"
    with pytest.raises(LocalProtocolError):
        encode_frame(3, b"ab")


# -- the client side -------------------------------------------------------------------------


async def test_client_read_timeout_names_peer_and_phase() -> None:
    class Mute(FramedHandler):
        async def handle(self) -> None:
            await self.read_frame()

    async with tcp_server(Mute) as server:
        host, port = server.address
        async with await FramedClient.connect(host, port, timeout=0.2) as client:
            with pytest.raises(OperationTimeout) as info:
                await client.read_frame()
    assert str(info.value) == f"timed out after 0.2 s during read with {host}:{port}"


async def test_client_request_timeout_covers_send_and_reply_together() -> None:
    class Dribble(FramedHandler):
        """Sends its reply one byte at a time: each read makes progress, the whole is late."""

        async def handle(self) -> None:
            await self.read_frame()
            for byte in b"slow reply\r\n":
                self.writer.write(bytes([byte]))
                await asyncio.sleep(0.05)  # a slow reply on purpose, not a readiness wait

    async with tcp_server(Dribble) as server:
        async with await FramedClient.connect(*server.address, timeout=5) as client:
            with pytest.raises(OperationTimeout, match="during request with"):
                await client.request(b"hi", timeout=0.2)


async def test_client_deadline_bounds_several_operations() -> None:
    class Slow(FramedHandler):
        async def handle(self) -> None:
            async for frame in self.frames():
                await asyncio.sleep(0.1)  # a slow server on purpose, not a readiness wait
                await self.send_frame(frame)

    async with tcp_server(Slow) as server:
        async with await FramedClient.connect(*server.address, timeout=1) as client:
            assert await client.request(b"one") == b"one"  # in time on its own
            with pytest.raises(OperationTimeout, match=r"after 0\.25 s during batch with"):
                async with client.deadline(0.25, "batch"):
                    for n in range(10):
                        await client.request(b"%d" % n)


async def test_client_incomplete_frame_and_frame_too_large() -> None:
    class Truncating(FramedHandler):
        async def handle(self) -> None:
            await self.read_frame()
            self.writer.write(b"\x00\x0apart")  # announces 10 bytes, sends 4, closes

    class Huge(FramedHandler):
        async def handle(self) -> None:
            await self.read_frame()
            self.writer.write(b"y" * 200 + b"\r\n")

    async with tcp_server(Truncating) as server:
        async with await FramedClient.connect(
            *server.address, terminator=LengthPrefix("!H"), timeout=5
        ) as client:
            with pytest.raises(IncompleteFrame) as info:
                await client.request(b"go", b"\r\n")
    assert (info.value.received, info.value.missing) == (6, 6)
    async with tcp_server(Huge) as server:
        async with await FramedClient.connect(
            *server.address, max_frame_size=100, timeout=5
        ) as client:
            with pytest.raises(FrameTooLarge):
                await client.request(b"go")


async def test_client_connect_refused_and_server_closing_instead_of_replying() -> None:
    class Hangup(FramedHandler):
        async def handle(self) -> None:
            await self.read_frame()

    async with tcp_server(Hangup) as server:
        address = server.address
        async with await FramedClient.connect(*address, timeout=5) as client:
            with pytest.raises(NetworkError, match="closed the connection instead of replying"):
                await client.request(b"anyone?")
    with pytest.raises(NetworkError, match=f"connect with 127.0.0.1:{address[1]} failed"):
        await FramedClient.connect(*address, timeout=5)
