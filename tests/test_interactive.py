"""The interactive clients print what a server sends escaped (Issue 10 item 6)."""

from __future__ import annotations

import asyncio
import io

from asyncnet import DatagramHandler, udp_server
from asyncnet.clients.interactive import datagram_session, line_session


async def test_line_client_escapes_a_hostile_servers_control_characters() -> None:
    """Issue 10 item 6: ESC, BEL, CR and U+2028 from the server are printed escaped."""

    async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"\x1b]0;owned\x07\x1b[2J\rfake prompt\xe2\x80\xa8$ \n")
        await writer.drain()
        await reader.read()  # the blank line, then EOF
        writer.close()

    server = await asyncio.start_server(hostile, "127.0.0.1", 0)
    async with server:
        out = io.StringIO()
        port = server.sockets[0].getsockname()[1]
        status = await line_session(
            "127.0.0.1", port, timeout=5, stdin=io.StringIO("hello\n\n"), stdout=out
        )
    assert status == 0
    assert out.getvalue() == "\\x1b]0;owned\\x07\\x1b[2J\\rfake prompt\\u2028$ \n"


async def test_datagram_client_escapes_too() -> None:
    """Issue 10 item 6 (UDP): a reply datagram's control characters are escaped."""

    class Hostile(DatagramHandler):
        def handle(self, data: bytes, addr: object) -> bytes:
            return b"\x1b[31mred\x1b[0m\x07"

    async with udp_server(Hostile, port=0) as server:
        out = io.StringIO()
        host, port = server.address
        status = await datagram_session(
            host, port, timeout=2, stdin=io.StringIO("hi\n\n"), stdout=out
        )
    assert status == 0
    assert out.getvalue() == "\\x1b[31mred\\x1b[0m\\x07\n"
