"""One client pipelining a flood of lines cannot hold up another client.

Real sockets on loopback, on the stdlib loop and on uvloop.  The flooder sends every
line at once and does not read until the end; the probe speaks while the flood is
being handled (the handler itself sends the probe's line when it handles the first
flood line, so the probe's bytes are waiting in the kernel from then on, with no
timing guesswork).  Without a per-turn line budget the server handles the whole
read of flood lines before it looks at the probe.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from asyncnet import LineHandler, StreamHandler, tcp_server

FLOOD = 2000  # 8-byte lines: 16 KB, one recv() on loopback


class _Race:
    """Shared by the handlers of one test: what was handled when the probe came."""

    def __init__(self) -> None:
        self.flood_handled = 0
        self.probe_seen_after: int | None = None
        self.probe_writer: asyncio.StreamWriter | None = None

    def on_line(self, line: str) -> str:
        if line == "probe":
            self.probe_seen_after = self.flood_handled
            return "pong"
        self.flood_handled += 1
        if self.flood_handled == 1:
            assert self.probe_writer is not None
            self.probe_writer.write(b"probe\n")  # lands in the server's socket at once
        return line


async def _flood_and_probe(race: _Race, address: tuple[str, int], batch: int) -> None:
    loop = asyncio.get_running_loop()
    probe_reader, race.probe_writer = await asyncio.open_connection(*address)
    flooder = socket.socket()
    flooder.setblocking(False)
    try:
        await loop.sock_connect(flooder, address)
        await loop.sock_sendall(flooder, b"".join(b"f%06d\n" % i for i in range(FLOOD)))
        async with asyncio.timeout(10):
            assert await probe_reader.readline() == b"pong\n"
            # the probe was answered while the flood was still being handled
            assert race.probe_seen_after is not None
            assert race.probe_seen_after < FLOOD
            assert race.probe_seen_after <= 4 * batch
            received = 0
            while received < FLOOD * 8:  # then the flooder gets every reply
                chunk = await loop.sock_recv(flooder, 65536)
                assert chunk
                received += len(chunk)
    finally:
        flooder.close()
        race.probe_writer.close()


@pytest.mark.all_loops
async def test_line_handler_serves_a_probe_during_a_flood() -> None:
    """The line connection: the probe is answered mid-flood, on both loops."""
    race = _Race()

    class Echo(LineHandler):
        def handle_line(self, line: str) -> str:
            return race.on_line(line)

    async with tcp_server(Echo, port=0) as server:
        await _flood_and_probe(race, server.address, Echo.lines_per_batch)
    assert race.flood_handled == FLOOD


@pytest.mark.all_loops
async def test_stream_handler_serves_a_probe_during_a_flood() -> None:
    """The stream path: readline() yields between batches, on both loops."""
    race = _Race()

    class Echo(StreamHandler):
        async def handle(self) -> None:
            while line := await self.readline():
                self.writer.write(race.on_line(line.decode().rstrip("\n")).encode() + b"\n")
                await self.writer.drain()

    async with tcp_server(Echo, port=0) as server:
        await _flood_and_probe(race, server.address, Echo.lines_per_batch)
    assert race.flood_handled == FLOOD
