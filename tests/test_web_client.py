"""The HTTP client: urllib2's Request, fetch, downloads, and HC1-HC3 against hostile servers."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from asyncnet.errors import NetworkError, OperationTimeout, PeerProtocolError
from asyncnet.web import (
    BodyTooLarge,
    Client,
    HTTPStatusError,
    IncompleteBody,
    Request,
    TooManyRedirects,
    UnsafeRequest,
    WebServer,
    close_shared_client,
    download,
    fetch,
)
from asyncnet.web._client import shared_client

from .web_client_peers import proxy_py

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def fake_server(
    script: Script, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A scripted raw HTTP server on 127.0.0.1:0; yields its base URL and the request heads."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            await script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if ssl_context else "http"
    async with server:
        yield f"{scheme}://127.0.0.1:{port}/", heads


def respond(raw: bytes) -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()

    return script


@asynccontextmanager
async def app_server(routes: web.RouteTableDef) -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes(routes)
    async with WebServer(app, port=0) as server:
        yield server.url


# -- urllib2's Request ----------------------------------------------------------------------------


def test_request_is_urllib2_shaped() -> None:
    request = Request("http://127.0.0.1:8000/x", headers={"x-one": "1"})
    assert request.get_method() == "GET"
    request.add_header("user-agent", "first")
    request.add_header("User-Agent", "second")  # one header per name, like urllib2
    assert request.headers == {"X-one": "1", "User-agent": "second"}
    assert request.has_header("USER-AGENT")
    request.add_data({"subnum": "1"})
    assert request.method == "POST"
    request.set_proxy("127.0.0.1:8899", "http")
    assert request.proxy == "http://127.0.0.1:8899"
    assert Request("http://127.0.0.1/", method="PUT", data=b"x").method == "PUT"


@pytest.mark.parametrize(
    "make",
    [
        lambda: Request("http://127.0.0.1/a\r\nHost: evil"),
        lambda: Request("http://127.0.0.1/a b"),
        lambda: Request("http://127.0.0.1/", method="GET /x HTTP/1.1\r\nX:"),
        lambda: Request("http://127.0.0.1/", headers={"X-A": "1\r\nX-Injected: 2"}),
        lambda: Request("http://127.0.0.1/", headers={"X-A\r\nB": "1"}),
        lambda: Request("http://127.0.0.1/", headers={"X-A": "nul\x00"}),
    ],
)
def test_crlf_injection_is_refused_before_sending(make: Callable[[], Request]) -> None:
    """HC3: CR/LF in a caller-supplied method, header or URL: an error before any byte."""
    with pytest.raises(UnsafeRequest):
        make()


async def test_crlf_injection_through_fetch_sends_nothing() -> None:
    """HC3: the same through fetch(): the server never sees a connection."""
    async with fake_server(respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")) as (
        url,
        heads,
    ):
        async with Client() as client:
            with pytest.raises(UnsafeRequest):
                await client.fetch(url, headers={"X-A": "v\r\nX-B: injected"})
            with pytest.raises(UnsafeRequest):
                await client.fetch(url + "x\r\nX-C: y")
            with pytest.raises(UnsafeRequest):
                await client.fetch(url, method="GET\r\n")
    assert heads == []


def test_only_http_urls() -> None:
    with pytest.raises(ValueError, match="http"):
        Request("file:///etc/passwd")
    with pytest.raises(ValueError, match="http"):
        Request("ftp://127.0.0.1/")


# -- the happy paths ------------------------------------------------------------------------------


async def test_fetch_get_post_json_and_status() -> None:
    routes = web.RouteTableDef()

    @routes.route("*", "/echo")
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        info = {
            "method": request.method,
            "body": body.decode(),
            "type": request.content_type,
            "agent": request.headers.get("User-Agent"),
            "x": request.headers.get("X-Test"),
        }
        return web.json_response(info)

    @routes.get("/missing")
    async def missing(request: web.Request) -> web.Response:
        raise web.HTTPNotFound(text="nope")

    async with app_server(routes) as base, Client() as client:
        got = (await client.fetch(base + "echo", headers={"X-Test": "1"})).json()
        posted = await client.fetch(Request(base + "echo", data={"subnum": "42", "r": "a b"}))
        as_json = await client.fetch(base + "echo", json={"k": [1, 2]})
        missing_page = await client.fetch(base + "missing")
    assert got == {"method": "GET", "body": "", "type": "application/octet-stream",
                   "agent": "asyncnet", "x": "1"}  # fmt: skip
    assert posted.json()["method"] == "POST"
    assert posted.json()["body"] == "subnum=42&r=a+b"
    assert posted.json()["type"] == "application/x-www-form-urlencoded"
    assert json.loads(as_json.json()["body"]) == {"k": [1, 2]}
    assert missing_page.status == 404
    assert missing_page.text() == "nope"
    with pytest.raises(HTTPStatusError, match="404"):
        missing_page.raise_for_status()


async def test_shared_client_is_one_session_per_loop() -> None:
    routes = web.RouteTableDef()

    @routes.get("/")
    async def root(request: web.Request) -> web.Response:
        return web.Response(text="shared")

    async with app_server(routes) as base:
        first = await shared_client()
        assert (await fetch(base)).text() == "shared"
        assert await shared_client() is first
        await close_shared_client()
        second = await shared_client()
        assert second is not first
        assert (await fetch(base)).text() == "shared"
        await close_shared_client()


async def test_download_streams_with_progress(tmp_path: Path) -> None:
    payload = os.urandom(300_000)
    routes = web.RouteTableDef()

    @routes.get("/file")
    async def file(request: web.Request) -> web.Response:
        return web.Response(body=payload)

    seen: list[tuple[int, int | None]] = []
    async with app_server(routes) as base:
        size = await download(
            base + "file", tmp_path / "out.bin", progress=lambda d, t: seen.append((d, t))
        )
        await close_shared_client()
    assert size == len(payload)
    assert (tmp_path / "out.bin").read_bytes() == payload
    assert seen[-1] == (len(payload), len(payload))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert not (tmp_path / "out.bin.part").exists()


# -- HC1: truncated and broken bodies -------------------------------------------------------------


async def test_short_content_length_body_is_an_error(tmp_path: Path) -> None:
    """HC1: Content-Length 10000, 4 bytes, close: an error, never short data."""
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\nabcd"
    async with fake_server(respond(raw)) as (url, _), Client(timeout=5) as client:
        with pytest.raises(IncompleteBody):
            await client.fetch(url)
        with pytest.raises(IncompleteBody):
            await client.download(url, tmp_path / "short.bin")
    assert list(tmp_path.iterdir()) == []  # neither the file nor its .part


async def test_reset_mid_chunk_is_an_error() -> None:
    """HC1: a chunked body cut off mid-chunk: an error, never short data."""
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly-part"
    async with fake_server(respond(raw)) as (url, _), Client(timeout=5) as client:
        with pytest.raises((IncompleteBody, NetworkError)):
            await client.fetch(url)


# -- HC2: redirects -------------------------------------------------------------------------------


async def test_redirect_loop_stops() -> None:
    """HC2: a redirect loop ends with TooManyRedirects after the limit."""
    routes = web.RouteTableDef()
    hits = []

    @routes.get("/loop")
    async def loop(request: web.Request) -> web.Response:
        hits.append(1)
        raise web.HTTPFound("/loop")

    async with app_server(routes) as base, Client(max_redirects=5) as client:
        with pytest.raises(TooManyRedirects, match="5 redirects"):
            await client.fetch(base + "loop")
    assert 5 <= len(hits) <= 6


async def test_cross_origin_redirect_drops_credentials() -> None:
    """HC2: Authorization follows a same-origin redirect, never one to another origin."""
    other_routes = web.RouteTableDef()
    seen: list[str | None] = []

    @other_routes.get("/landing")
    async def landing(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(text="landed")

    async with app_server(other_routes) as other:
        routes = web.RouteTableDef()

        @routes.get("/away")
        async def away(request: web.Request) -> web.Response:
            raise web.HTTPFound(other + "landing")  # another port: another origin

        @routes.get("/here")
        async def here(request: web.Request) -> web.Response:
            raise web.HTTPFound("/landing")

        @routes.get("/landing")
        async def landing_here(request: web.Request) -> web.Response:
            seen.append(request.headers.get("Authorization"))
            return web.Response(text="landed here")

        async with app_server(routes) as base, Client() as client:
            auth = {"Authorization": "Bearer secret-token"}
            assert (await client.fetch(base + "away", headers=auth)).text() == "landed"
            assert (await client.fetch(base + "here", headers=auth)).text() == "landed here"
    assert seen == [None, "Bearer secret-token"]


# -- HC3: hostile responses -----------------------------------------------------------------------


async def test_gzip_bomb_stops_at_max_body() -> None:
    """HC3: 64 MiB of zeros in a ~64 KiB gzip body: BodyTooLarge at the 1 MiB limit."""
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)
    raw = (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
        + f"Content-Length: {len(bomb)}\r\n\r\n".encode()
        + bomb
    )
    async with fake_server(respond(raw)) as (url, _), Client(max_body=1024 * 1024) as client:
        with pytest.raises(BodyTooLarge, match="1048576"):
            await client.fetch(url)


async def test_huge_header_line_is_a_protocol_error() -> None:
    """HC3: a 100 KB header line: a peer protocol error, not a 100 KB buffer."""
    raw = b"HTTP/1.1 200 OK\r\nX-Huge: " + b"h" * 100_000 + b"\r\nContent-Length: 0\r\n\r\n"
    async with fake_server(respond(raw)) as (url, _), Client(timeout=5) as client:
        with pytest.raises(PeerProtocolError, match="8190 bytes"):
            await client.fetch(url)


async def test_stalled_body_times_out_and_closes() -> None:
    """HC3: a body that stops arriving: OperationTimeout, and the connection is closed."""
    closed = asyncio.Event()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        await reader.read()  # returns when the client closes the connection
        closed.set()

    async with fake_server(stall) as (url, _), Client(timeout=0.5) as client:
        with pytest.raises(OperationTimeout):
            await client.fetch(url)
        async with asyncio.timeout(5):
            await closed.wait()


async def test_tls_is_verified_by_default(tmp_path: Path) -> None:
    """An untrusted certificate fails; a context that trusts the CA gets the body."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecret"
    async with fake_server(respond(raw), ssl_context=context) as (url, _):
        async with Client(timeout=5) as client:
            with pytest.raises(NetworkError, match=r"(?i)TLS: .*certificate"):
                await client.fetch(url)
            trusting = ssl.create_default_context()
            ca.configure_trust(trusting)
            trusted = await client.fetch(url, ssl=trusting)
    assert trusted.body == b"secret"


async def test_refused_connection_names_the_url() -> None:
    async with fake_server(respond(b"")) as (url, _):
        pass  # closed again: nothing listens on that port now
    async with Client(timeout=5) as client:
        with pytest.raises(NetworkError, match=r"GET http://127\.0\.0\.1:\d+/ failed"):
            await client.fetch(url)


# -- a real forward proxy (proxy.py) on loopback --------------------------------------------------


@pytest.mark.slow
async def test_through_a_real_forward_proxy(tmp_path: Path) -> None:
    """The client through proxy.py: Request.set_proxy and Client(proxy=...)."""
    routes = web.RouteTableDef()
    seen: list[str] = []

    @routes.get("/via")
    async def via(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.Response(text="through the proxy")

    async with app_server(routes) as base, proxy_py(tmp_path) as proxy_url:
        host = proxy_url.removeprefix("http://")
        request = Request(base + "via")
        request.set_proxy(host, "http")
        async with Client(timeout=20) as client:
            first = await client.fetch(request)
        async with Client(timeout=20, proxy=proxy_url) as client:
            second = await client.fetch(base + "via")
    assert first.text() == second.text() == "through the proxy"
    assert seen == ["/via", "/via"]


SHARED_SESSION_SCRIPT = """
import asyncio, gc, sys
from aiohttp import web
from asyncnet import run
from asyncnet.web import WebServer, fetch

async def ok(request):
    return web.Response(text="ok")

async def main():
    app = web.Application()
    app.router.add_get("/", ok)
    async with WebServer(app, port=0) as server:
        print((await fetch(server.url)).text())

run(main(), use_uvloop=sys.argv[1] == "uvloop")
gc.collect()
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.slow
def test_shared_session_is_closed_with_the_loop(loop: str) -> None:
    """No "Unclosed client session" when a program ends without closing the shared client."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", SHARED_SESSION_SCRIPT, loop],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"
    assert done.stderr == ""


async def test_fetch_leaves_the_callers_request_alone() -> None:
    routes = web.RouteTableDef()

    @routes.route("*", "/")
    async def root(request: web.Request) -> web.Response:
        return web.Response(text=f"{request.method} {request.headers.get('X-Extra')}")

    request = Request("http://127.0.0.1/")  # replaced below, once the port is known
    async with app_server(routes) as base, Client() as client:
        request = Request(base)
        first = await client.fetch(request, headers={"X-Extra": "1"}, data=b"body")
        second = await client.fetch(request)
    assert first.text() == "POST 1"
    assert second.text() == "GET None"
    assert request.headers == {}
    assert request.data is None


@pytest.mark.slow
async def test_download_timeout_bounds_stalls_not_the_transfer(tmp_path: Path) -> None:
    """A steady download longer than the timeout completes; a 4xx is an error, no file."""
    routes = web.RouteTableDef()

    @routes.get("/steady")
    async def steady(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(15):
            await response.write(b"x" * 1000)
            await asyncio.sleep(0.1)  # 1.5 s in all, never 1 s without data
        return response

    async with app_server(routes) as base, Client(timeout=1.0) as client:
        size = await client.download(base + "steady", tmp_path / "steady.bin")
        with pytest.raises(HTTPStatusError, match="404"):
            await client.download(base + "missing", tmp_path / "missing.bin")
        with pytest.raises(OperationTimeout):
            await client.fetch(base + "steady")  # fetch: the timeout is for the whole request
    assert size == 15000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["steady.bin"]


async def test_an_unknown_host_is_named_in_the_resolver_s_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A name that does not resolve reads "Name or service not known", not "Unknown
    error -2": aiohttp re-raises getaddrinfo's failure as an OSError carrying the
    negative EAI_* code, which is no errno.

    No DNS query is sent: the loop's getaddrinfo is replaced (aiohttp's threaded
    resolver calls it).
    """
    import socket

    import aiohttp.resolver

    if aiohttp.resolver.DefaultResolver is not aiohttp.resolver.ThreadedResolver:
        pytest.skip("aiohttp resolves without loop.getaddrinfo here (aiodns)")
    asked: list[str] = []

    async def getaddrinfo(host: str, *args: object, **kwargs: object) -> list[object]:
        asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    async with Client(timeout=5) as client:
        with pytest.raises(NetworkError) as info:
            await client.fetch("http://nosuch.invalid/")
    assert asked == ["nosuch.invalid"]
    assert "Name or service not known" in str(info.value)
    assert "Unknown error" not in str(info.value)
    assert info.value.errno is None
