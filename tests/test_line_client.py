"""LineClient reads through LineBuffer: limits, CR stripping, no resync, split replies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest

from asyncnet import LineClient, LineTooLong, LocalProtocolError, NetworkError

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[tuple[str, int]]:
    """A fake server on 127.0.0.1:0 that runs ``script`` for its one client."""
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(reader, writer)
        finally:
            writer.close()
            done.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[:2]
        async with asyncio.timeout(5):
            await done.wait()


async def test_reply_split_anywhere_with_crlf_and_a_final_unterminated_line() -> None:
    """Replies dribbled a byte at a time are reassembled; \\r\\n and a last bare line work."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for byte in b"one\r\ntwo\nthree":
            writer.write(bytes([byte]))
            await writer.drain()

    async with scripted(script) as address:
        async with await LineClient.connect(*address, timeout=5) as client:
            assert await client.read_line() == "one"
            assert await client.read_line() == "two"
            assert await client.read_line() == "three"
            assert await client.read_line() is None


async def test_over_long_reply_raises_and_never_resyncs() -> None:
    """S1 (client side): the tail of an over-long line never comes back as a reply."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"x" * 100 + b"SMUGGLED\nnext\n")
        await writer.drain()
        await reader.read()  # until the client goes

    async with scripted(script) as address:
        async with await LineClient.connect(*address, timeout=5, max_line_length=64) as client:
            with pytest.raises(LineTooLong):
                await client.read_line()
            with pytest.raises(LineTooLong):
                await client.read_line()


async def test_send_line_refuses_the_delimiter() -> None:
    """A line holding the delimiter would be two lines on the wire: refused, nothing sent."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.read() == b""

    async with scripted(script) as address:
        async with await LineClient.connect(*address, timeout=5) as client:
            with pytest.raises(LocalProtocolError):
                await client.send_line("RETR 1\nDELE 1")


async def test_a_request_the_server_closes_on_names_the_missing_reply() -> None:
    """request(): a server that closes instead of replying is a NetworkError that says so."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()  # and close without a word

    async with scripted(script) as address:
        async with await LineClient.connect(*address, timeout=5) as client:
            with pytest.raises(NetworkError, match="closed the connection instead of replying"):
                await client.request("hello")
