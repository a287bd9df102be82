"""How the web client reads a body: whole aiohttp buffers, one body buffer, no second copy.

Speed itself is measured by ``python -m benchmarks.http_client`` (never as a timed
test); these tests pin what that speed rests on and what it must not cost: a fetch
holds its body once (not a list of chunks plus their join), a ``Content-Length``
alone reserves no more than ``max_body``, and a body shorter than announced is an
error, never the reserve's zeros.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from asyncnet.web import BodyTooLarge, Client, IncompleteBody

BODY = os.urandom(8 * 1024 * 1024)


@asynccontextmanager
async def app_server(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """aiohttp's server on 127.0.0.1:0 with one handler for every path; yields its URL."""
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}/"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def raw_server(answer: bytes) -> AsyncIterator[str]:
    """A server that reads a request head, writes ``answer`` and closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    finally:
        server.close()
        await server.wait_closed()


async def bodies(request: web.Request) -> web.StreamResponse:
    if request.path == "/gzip":
        return web.Response(
            body=gzip.compress(BODY[:100_000]), headers={"Content-Encoding": "gzip"}
        )
    if request.path == "/chunked":
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(BODY), 1 << 20):
            await response.write(BODY[start : start + (1 << 20)])
        await response.write_eof()
        return response
    # In 64 KiB writes, each drained: this server shares the process (and tracemalloc's
    # count) with the client, so it must not buffer the body it sends.
    response = web.StreamResponse()
    response.content_length = len(BODY)
    await response.prepare(request)
    view = memoryview(BODY)
    for start in range(0, len(BODY), 1 << 16):
        await response.write(view[start : start + (1 << 16)])
    await response.write_eof()
    return response


@pytest.mark.timeout(30)
async def test_a_fetch_holds_its_body_once() -> None:
    """8 MiB fetched: the peak of Python's allocations stays under 1.5x the body (a
    list of chunks joined at the end peaks at 2x, and gave the memory back each time)."""
    async with app_server(bodies) as base, Client(timeout=10, max_body=len(BODY)) as client:
        async with asyncio.timeout(20):
            await client.fetch(base)  # the pool and the imports, outside the count
            tracemalloc.start()
            try:
                tracemalloc.reset_peak()
                response = await client.fetch(base)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert response.body == BODY
    assert peak < 1.5 * len(BODY), f"peak {peak / len(BODY):.2f}x the body"


@pytest.mark.timeout(30)
async def test_bodies_without_a_length_or_compressed_come_back_whole() -> None:
    """Chunked (no Content-Length: the buffer grows) and gzip (Content-Length counts
    the compressed bytes: no reserve from it) bodies, byte for byte."""
    async with app_server(bodies) as base, Client(timeout=10, max_body=len(BODY)) as client:
        async with asyncio.timeout(20):
            assert (await client.fetch(base + "chunked")).body == BODY
            zipped = await client.fetch(base + "gzip")
    assert zipped.body == BODY[:100_000]
    assert zipped.headers["Content-Encoding"] == "gzip"


@pytest.mark.timeout(10)
async def test_a_body_shorter_than_its_length_is_an_error_not_zeros() -> None:
    """HC1: Content-Length 100000 with 4 bytes, then close: IncompleteBody, never the
    4 bytes padded with the reserved buffer's zeros."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nabcd"
    async with raw_server(answer) as url, Client(timeout=5) as client:
        with pytest.raises(IncompleteBody):
            async with asyncio.timeout(8):
                await client.fetch(url)


@pytest.mark.timeout(10)
async def test_a_huge_content_length_reserves_no_more_than_max_body() -> None:
    """HC3: a head announcing a terabyte sets aside at most ``max_body`` (1 MiB here),
    and the body past it is BodyTooLarge as before."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1099511627776\r\n\r\n" + bytes(2 << 20)
    async with raw_server(answer) as url, Client(timeout=5, max_body=1 << 20) as client:
        tracemalloc.start()
        try:
            with pytest.raises(BodyTooLarge):
                async with asyncio.timeout(8):
                    await client.fetch(url)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 4 << 20


@pytest.mark.timeout(10)
async def test_a_head_answer_has_a_length_but_an_empty_body() -> None:
    """A HEAD answer's Content-Length describes a body that never comes: the fetch
    returns at once with an empty body (nothing is reserved for it, nothing waited for)."""

    async def head(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * 5000)

    app = web.Application()
    app.router.add_route("HEAD", "/", head)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        async with Client(timeout=5) as client, asyncio.timeout(8):
            response = await client.fetch(f"http://{host}:{port}/", method="HEAD")
    finally:
        await runner.cleanup()
    assert response.status == 200
    assert response.headers["Content-Length"] == "5000"
    assert response.body == b""


def test_the_benchmark_marks_each_target_met_or_missed() -> None:
    """The benchmark's table: MB/s from median seconds, ratio, met or MISSED."""
    from benchmarks.http_client import MiB, Result, Sample, table

    result = Result("nginx", "uvloop", 3, 20 * MiB)
    for scheme, (stdlib, ours) in {"http": (0.02, 0.01), "https": (0.02, 0.04)}.items():
        for mode in ("memory", "file"):
            result.samples[f"{scheme} urllib {mode}"] = [Sample(stdlib, 0.01, 0)] * 3
            result.samples[f"{scheme} asyncnet {mode}"] = [
                Sample(ours, 0.02, 0),
                Sample(ours, 0.02, 0),
                Sample(ours * 10, 0.02, 0),  # one slow round: the median ignores it
            ]
    text = table(result)
    assert "| http memory | 1049 | 2097 | 2.00x | >= 1.0x met | 10 / 20 |" in text
    assert "| https file | 1049 | 524 | 0.50x | >= 0.9x MISSED | 10 / 20 |" in text
    assert "median of 3 interleaved rounds, asyncnet on uvloop" in text
