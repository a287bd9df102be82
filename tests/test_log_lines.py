"""Log lines name the peer once (never "closing A: stream ended mid-frame from A").

The errors a connection closes for (LineTooLong, FrameTooLarge, IncompleteFrame,
OperationTimeout) already name the peer; the closing line must not repeat it.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from asyncnet import FramedHandler, LineHandler, tcp_server
from tests.helpers import read_all


class Frames(FramedHandler):
    terminator = b"\n"

    async def handle(self) -> None:
        while await self.read_frame() is not None:
            pass


class Lines(LineHandler):
    max_line_length = 1024

    def handle_line(self, line: str) -> str:
        return line


async def closing_lines(handler: type, data: bytes, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Send ``data`` then EOF; return the server's log lines that mention the client."""
    with caplog.at_level(logging.INFO, logger="asyncnet"):
        async with tcp_server(handler, port=0) as server:
            reader, writer = await asyncio.open_connection(*server.address)
            peer = "{}:{}".format(*writer.get_extra_info("sockname")[:2])
            writer.write(data)
            writer.write_eof()
            await read_all(reader)
            writer.close()
            await writer.wait_closed()
    lines = [r.getMessage() for r in caplog.records if peer in r.getMessage()]
    assert lines, caplog.text
    return [line.replace(peer, "PEER") for line in lines]


@pytest.mark.parametrize(
    ("handler", "data"),
    [(Frames, b"no newline"), (Frames, b"x" * 70_000), (Lines, b"y" * 2048 + b"\n")],
    ids=["incomplete-frame", "frame-too-large", "line-too-long"],
)
async def test_closing_lines_name_the_peer_once(
    handler: type, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    lines = await closing_lines(handler, data, caplog)
    assert all(line.count("PEER") == 1 for line in lines), lines
