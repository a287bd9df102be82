"""Keep-alive: one Client, many requests to one origin, one TCP connection.

The server is aiohttp's own on 127.0.0.1 port 0; it records the peer (address and
ephemeral port) of every request, so the number of distinct peers is the number of
connections the client opened.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from asyncnet.web import Client, _links, close_shared_client, crawl, fetch

BIG = os.urandom(1024 * 1024)
SMALL = b"hello\n"
PRESS = b"compressible line\n" * 4000


@dataclass
class Peers:
    """Every request's (path, peer) as the server saw it."""

    seen: list[tuple[str, tuple[str, int]]] = field(default_factory=list)

    @property
    def connections(self) -> int:
        return len({peer for _, peer in self.seen})


def _app(peers: Peers, pages: dict[str, str] | None = None) -> web.Application:
    async def record(request: web.Request) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        assert peer is not None
        peers.seen.append((request.path, (peer[0], peer[1])))

    async def handle(request: web.Request) -> web.StreamResponse:
        await record(request)
        path = request.path
        if path == "/big":
            return web.Response(body=BIG, content_type="application/octet-stream")
        if path == "/small":
            return web.Response(body=SMALL, content_type="text/plain")
        if path == "/gzip":
            return web.Response(
                body=gzip.compress(PRESS),
                headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
            )
        if path == "/chunked":  # no Content-Length: the body ends with the last chunk
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for start in range(0, 300_000, 50_000):
                await response.write(BIG[start : start + 50_000])
            await response.write_eof()
            return response
        if path.endswith(".png"):  # the body after a pause: not in the read with the head
            response = web.StreamResponse(headers={"Content-Type": "image/png"})
            response.content_length = 4096
            await response.prepare(request)
            await asyncio.sleep(0.05)
            await response.write(b"\x89PNG" + bytes(4092))
            await response.write_eof()
            return response
        if path == "/old":
            raise web.HTTPMovedPermanently("/page1.html")
        if pages is not None and path in pages:
            return web.Response(text=pages[path], content_type="text/html")
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@asynccontextmanager
async def server(peers: Peers, pages: dict[str, str] | None = None) -> AsyncIterator[str]:
    """aiohttp's server on 127.0.0.1:0; yields its base URL."""
    runner = web.AppRunner(_app(peers, pages), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.timeout(20)
async def test_sequential_fetches_and_downloads_share_one_connection(tmp_path: Path) -> None:
    """Twelve requests of every body shape (length, chunked, gzip) and three downloads
    from one Client: the server accepts one connection."""
    peers = Peers()
    async with server(peers) as base, Client(timeout=10) as client:
        async with asyncio.timeout(15):
            for _ in range(3):
                assert (await client.fetch(f"{base}/big")).body == BIG
                assert (await client.fetch(f"{base}/small")).body == SMALL
                assert (await client.fetch(f"{base}/gzip")).body == PRESS
                assert (await client.fetch(f"{base}/chunked")).body == BIG[:300_000]
            for n in range(3):
                size = await client.download(f"{base}/big", tmp_path / f"big{n}")
                assert size == len(BIG)
                digest = hashlib.sha256((tmp_path / f"big{n}").read_bytes()).digest()
                assert digest == hashlib.sha256(BIG).digest()
    assert len(peers.seen) == 15
    assert peers.connections == 1


@pytest.mark.timeout(20)
async def test_the_shared_client_reuses_its_connection() -> None:
    """``fetch()`` without a Client of your own: five fetches, one connection."""
    peers = Peers()
    async with server(peers) as base:
        try:
            async with asyncio.timeout(15):
                for _ in range(5):
                    assert (await fetch(f"{base}/big")).body == BIG
        finally:
            await close_shared_client()
    assert peers.connections == 1


@pytest.mark.timeout(20)
async def test_an_unread_stream_gives_its_connection_up_and_the_next_opens_one() -> None:
    """A body left unread cannot be reused (the next response would start in it): the
    pool opens a new connection after it, and the bodies stay right."""
    peers = Peers()
    async with server(peers) as base, Client(timeout=10) as client:
        async with asyncio.timeout(15):
            async with client.open(f"{base}/big") as response:
                assert response.status == 200  # body never read
            assert (await client.fetch(f"{base}/big")).body == BIG
            assert (await client.fetch(f"{base}/small")).body == SMALL
    assert peers.connections == 2


SITE = {
    "/": '<a href="/page1.html">1</a> <a href="/page2.html">2</a> <a href="/old">old</a>',
    "/page1.html": '<a href="/a.png">a</a> <a href="/page2.html">2</a> <a href="/gone">x</a>',
    "/page2.html": '<a href="/b.png">b</a> <a href="/page3.html">3</a>',
    "/page3.html": '<img src="/c.png"> <a href="/">home</a>',
}


@pytest.mark.timeout(20)
async def test_a_crawl_uses_one_connection_for_pages_images_redirects_and_404s() -> None:
    """A crawl with concurrency 1: robots.txt (404), four pages, three images whose
    bodies come after their heads, a redirect and a broken link, on one connection:
    the small bodies it does not want are read to the end, not left to close it."""
    peers = Peers()
    async with server(peers, SITE) as base:
        async with asyncio.timeout(15):
            report = await crawl(f"{base}/", concurrency=1, timeout=10)
    assert [broken.url for broken in report.broken] == [f"{base}/gone"]
    assert {f"{base}/a.png", f"{base}/b.png", f"{base}/c.png"} <= set(report.pages)
    assert report.pages[f"{base}/old"] == 301
    paths = [path for path, _ in peers.seen]
    assert paths[0] == "/robots.txt"
    assert {"/old", "/page1.html", "/a.png", "/c.png", "/gone"} <= set(paths)
    assert peers.connections == 1


@pytest.mark.timeout(20)
async def test_a_crawl_with_concurrency_opens_at_most_that_many_connections() -> None:
    """Four workers over the same site: no more than four connections in all."""
    peers = Peers()
    pages = {"/": "".join(f'<a href="/p{n}.html">{n}</a>' for n in range(30))}
    pages.update({f"/p{n}.html": f'<a href="/p{(n + 1) % 30}.html">next</a>' for n in range(30)})
    async with server(peers, pages) as base:
        async with asyncio.timeout(15):
            report = await crawl(f"{base}/", concurrency=4, timeout=10)
    assert len(report.pages) == 31
    assert not report.broken
    assert 1 <= peers.connections <= 4


@pytest.mark.timeout(20)
async def test_a_stalled_unwanted_body_neither_breaks_the_link_nor_holds_the_crawl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An image whose body stops after 10 of its 1000 bytes: the link is fine (200),
    the crawl gives its connection up after DRAIN_TIME and carries on."""
    monkeypatch.setattr(_links, "DRAIN_TIME", 0.2)
    stalled = asyncio.Event()
    release = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == "/":
            return web.Response(
                text='<img src="/stuck.png"> <a href="/after.html">x</a>', content_type="text/html"
            )
        if request.path == "/after.html":
            return web.Response(text="fine", content_type="text/html")
        if request.path == "/stuck.png":
            response = web.StreamResponse(headers={"Content-Type": "image/png"})
            response.content_length = 1000
            await response.prepare(request)
            await response.write(bytes(10))
            stalled.set()
            await release.wait()
            return response
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        base = f"http://{host}:{port}"
        async with asyncio.timeout(10):
            report = await crawl(f"{base}/", concurrency=1, timeout=8)
        assert stalled.is_set()
        assert report.pages[f"{base}/stuck.png"] == 200
        assert report.pages[f"{base}/after.html"] == 200
        assert not report.broken
    finally:
        release.set()
        await runner.cleanup()
