"""Request limits (H4) and smuggling (H5), over raw sockets against the web server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from asyncnet.web import WebServer

from .web_helpers import parse_response, raw_exchange, raw_get


@pytest.fixture
async def recorded() -> AsyncIterator[tuple[WebServer, list[str]]]:
    """A server whose one handler records each request it sees."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append(f"{request.method} {request.raw_path} {len(body)}")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async with WebServer(app, port=0, header_timeout=0.5) as server:
        yield server, seen


async def _still_serves(server: WebServer) -> None:
    async with asyncio.timeout(5):
        response = await raw_get(server.address[1], "/ok")
    assert response.status == 200


@pytest.mark.parametrize(
    ("name", "request_bytes"),
    [
        ("70 KB request line", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("80 KB header", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 80_000 + b"\r\n\r\n"),
        (
            "150 headers",
            b"GET / HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(150))
            + b"\r\n",
        ),
    ],
)
async def test_oversized_requests_are_refused(
    recorded: tuple[WebServer, list[str]], name: str, request_bytes: bytes
) -> None:
    """H4: over-long request line, header, too many headers: 4xx and closed; server fine."""
    server, seen = recorded
    async with asyncio.timeout(5):
        raw = await raw_exchange(server.address[1], request_bytes)
    response = parse_response(raw)
    assert 400 <= response.status < 500, (name, raw[:200])
    assert seen == []
    await _still_serves(server)


async def test_slowloris_headers_are_cut_off(recorded: tuple[WebServer, list[str]]) -> None:
    """H4: headers dribbled one byte per 0.2 s: closed after header_timeout, others served."""
    server, seen = recorded
    reader, writer = await asyncio.open_connection(*server.address)
    started = time.monotonic()
    closed_after = None
    try:
        async with asyncio.timeout(5):
            for index, byte in enumerate(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 100):
                writer.write(bytes([byte]))
                try:
                    await writer.drain()
                except ConnectionError:
                    break
                try:
                    async with asyncio.timeout(0.2):
                        if await reader.read(1) == b"":
                            break
                except TimeoutError:
                    pass
                # a concurrent normal request is served meanwhile
                if index == 1:
                    await _still_serves(server)
            closed_after = time.monotonic() - started
    finally:
        writer.close()
    assert closed_after is not None
    assert closed_after < 2.0  # header_timeout=0.5, with slack for a loaded machine
    assert seen == ["GET /ok 0"]


SMUGGLING = {
    "CL and TE": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    "duplicate CL": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 50\r\n"
    b"\r\nhello",
    "xchunked": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n",
    "chunked, xchunked": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, xchunked"
    b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "bare LF in headers": b"GET / HTTP/1.1\nHost: x\nX-A: b\n\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
    "LF in chunk extension": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;a=b\nc\r\nhello\r\n0\r\n\r\n",
    "space before colon": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
}


@pytest.mark.parametrize("name", list(SMUGGLING))
async def test_smuggling_attempts_get_400_and_close(
    recorded: tuple[WebServer, list[str]], name: str
) -> None:
    """H5: ambiguous framing is a 400 and the connection closes; no second request is seen."""
    server, seen = recorded
    async with asyncio.timeout(5):
        raw = await raw_exchange(server.address[1], SMUGGLING[name])
    response = parse_response(raw)
    assert response.status == 400, (name, raw[:300])
    assert raw.startswith(b"HTTP/1.")
    assert len(response.body) == int(response.headers["content-length"])  # then the close
    assert seen == []
    await _still_serves(server)


async def test_pipelined_requests_are_each_framed_once(
    recorded: tuple[WebServer, list[str]],
) -> None:
    """H5: a well-formed pipelined pair is two requests, each with its own body."""
    server, seen = recorded
    data = (
        b"POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    async with asyncio.timeout(5):
        raw = await raw_exchange(server.address[1], data)
    assert raw.count(b"HTTP/1.1 200") == 2
    assert seen == ["POST /one 5", "GET /two 0"]


def test_header_timeout_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="header_timeout"):
        WebServer(web.Application(), port=0, header_timeout=0)
