"""The CGI runner's output path: the script's chunks relayed as read, in order, bounded.

A script's stdout is read by ``PipeReader`` (each ``os.read()`` chunk handed to the
client as it is, no StreamReader copying it in and out), which stops reading the
pipe once 256 KiB wait unread, so a script that writes faster than the client
reads blocks in ``write()`` instead of growing the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import sys
from pathlib import Path

import pytest

from asyncnet.web import web_server
from asyncnet.web._cgi import PipeReader

from .web_helpers import parse_response

pytestmark = [pytest.mark.timeout(60), pytest.mark.all_loops]

SIZE = 8 * 1024 * 1024 + 4321

BIG_OUTPUT = """
out = sys.stdout.buffer
out.write(b"Content-Type: application/octet-stream\\r\\n\\r\\n")
block = bytes(range(256)) * 257  # 65,792 bytes: chunks never line up with the pipe's
left, n = SIZE, 0
while left:
    piece = block[n % 251:][: min(left, 40_000 + n % 30_000)]
    out.write(piece)
    left -= len(piece)
    n += 1
out.flush()
"""


def expected_output() -> bytes:
    block = bytes(range(256)) * 257
    pieces, left, n = [], SIZE, 0
    while left:
        piece = block[n % 251 :][: min(left, 40_000 + n % 30_000)]
        pieces.append(piece)
        left -= len(piece)
        n += 1
    return b"".join(pieces)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    scripts = root / "cgi-bin"
    scripts.mkdir(parents=True)
    big = scripts / "big.py"
    big.write_text(f"#!{sys.executable}\nimport sys\nSIZE = {SIZE}\n{BIG_OUTPUT}")
    big.chmod(0o755)
    return root


async def test_big_output_reaches_a_slow_reader_exactly(site: Path) -> None:
    """8 MiB through a client that reads 8 KiB at a time: every byte, in order."""
    options = {"max_output": 64 * 1024 * 1024, "time_limit": 30.0}
    async with web_server(site, port=0, cgi=True, cgi_options=options) as server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.address[1]))
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            writer.write(b"GET /cgi-bin/big.py HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            async with asyncio.timeout(45):
                head = parse_response(await reader.readuntil(b"\r\n\r\n"))
                body = bytearray()
                # No Content-Length from the script: chunked transfer coding.
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    if size == 0:
                        await reader.readuntil(b"\r\n")
                        break
                    while size:
                        chunk = await reader.read(min(size, 8192))
                        assert chunk
                        body += chunk
                        size -= len(chunk)
                    assert await reader.readexactly(2) == b"\r\n"
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    assert head.status == 200
    assert head.headers["content-type"] == "application/octet-stream"
    assert len(body) == SIZE
    assert hashlib.sha256(body).digest() == hashlib.sha256(expected_output()).digest()


async def test_pipe_reader_stops_reading_when_nobody_takes_the_chunks() -> None:
    """Unread chunks stay bounded; the writer is held back by a full pipe; then all flows."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    output = await PipeReader.open(read_end)
    written = bytearray()
    counter = 0
    try:
        idle_rounds = 0
        for _ in range(5000):  # bounded: stops long before when the pipe stays full
            wrote = 0
            while True:
                piece = counter.to_bytes(4, "big") * 4096  # 16 KiB, numbered
                try:
                    n = os.write(write_end, piece)
                except BlockingIOError:
                    break
                written += piece[:n]
                wrote += n
                counter += 1
                if n < len(piece):
                    break
            idle_rounds = idle_rounds + 1 if wrote == 0 else 0
            if idle_rounds >= 50:
                break  # the reader stopped reading: the pipe stays full
            await asyncio.sleep(0)
        assert idle_rounds >= 50, "the reader never stopped reading"
        # What the reader holds: about HIGH_WATER, plus the read that crossed it.
        assert PipeReader.HIGH_WATER < output.buffered <= PipeReader.HIGH_WATER + 1024 * 1024
        # The rest waits in the pipe, not in our memory.
        assert len(written) > output.buffered
        received = bytearray()
        async with asyncio.timeout(10):
            while len(received) < len(written):
                chunk = await output.read()
                assert chunk
                received += chunk
            # Drained, the reader reads again: the writer goes on.
            written += b"after" * 1000
            os.write(write_end, b"after" * 1000)
            while len(received) < len(written):
                received += await output.read()
            os.close(write_end)
            write_end = -1
            assert await output.read() == b""
        assert received == written
    finally:
        if write_end >= 0:
            os.close(write_end)
        output.close()


async def test_pipe_reader_close_drops_what_is_buffered() -> None:
    read_end, write_end = os.pipe()
    output = await PipeReader.open(read_end)
    try:
        os.write(write_end, b"data")
        async with asyncio.timeout(5):
            assert await output.read() == b"data"
        os.write(write_end, b"more")
        output.close()
        async with asyncio.timeout(5):
            assert await output.read() == b""
    finally:
        os.close(write_end)
