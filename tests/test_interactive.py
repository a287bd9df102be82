"""The interactive clients print what a server sends escaped (a hostile server cannot
drive the terminal), and take any input bytes."""

from __future__ import annotations

import asyncio
import io

from asyncnet import DatagramHandler, tcp_server, udp_server
from asyncnet.clients import datagram_session, line_session, stdin_lines
from asyncnet.demos.upper import Upper
from asyncnet.text import line_bytes, not_text


async def test_line_client_escapes_a_hostile_servers_control_characters() -> None:
    """ESC, BEL, CR and U+2028 from the server are printed escaped."""

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
    """UDP: a reply datagram's control characters are escaped."""

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


def strict_stdin(data: bytes) -> io.TextIOWrapper:
    """A stdin over ``data`` that decodes strictly, as in a ``LANG=en_US.UTF-8`` locale."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="strict")


async def test_stdin_lines_take_any_bytes_whatever_the_streams_decoding() -> None:
    """Undecodable bytes arrive as lone surrogates, and line_bytes() gives them back."""
    lines = [line async for line in stdin_lines(strict_stdin(b"caf\xc3\xa9\n\xff\xfe x\r\nend"))]
    assert lines == ["caf\xe9", "\udcff\udcfe x", "end"]
    assert [line_bytes(line) for line in lines] == [b"caf\xc3\xa9", b"\xff\xfe x", b"end"]
    assert [not_text(line) for line in lines] == [False, True, False]


async def test_line_client_refuses_a_line_that_is_not_utf8_and_goes_on(capsys) -> None:
    """The TCP client speaks UTF-8 lines: the bad line is refused, the next one is sent."""
    async with tcp_server(Upper, port=0) as server:
        out = io.StringIO()
        status = await line_session(
            *server.address, timeout=5, stdin=strict_stdin(b"a\n\xff\nb\n\n"), stdout=out
        )
    assert status == 0
    assert out.getvalue() == "A\nB\n"
    assert capsys.readouterr().err.splitlines()[1:] == [
        r"error: line not sent: b'\xff' is not UTF-8 text (the server reads UTF-8 lines)"
    ]
    assert server.stats.protocol_errors == 0


async def test_datagram_client_sends_the_bytes_as_they_came() -> None:
    """A datagram is bytes: the undecodable line goes out unchanged."""
    received: list[bytes] = []

    class Recording(DatagramHandler):
        def handle(self, data: bytes, addr: object) -> bytes:
            received.append(data)
            return data.upper()

    async with udp_server(Recording, port=0) as server:
        out = io.StringIO()
        status = await datagram_session(
            *server.address, timeout=2, stdin=strict_stdin(b"\xff\xfeab\n\n"), stdout=out
        )
    assert status == 0
    assert received == [b"\xff\xfeab"]
    assert out.getvalue() == "\ufffd\ufffdAB\n"
