"""The creosote web view answers only its own Host and Origin, in time (hardening X1).

A page on any site can re-point its own name at 127.0.0.1 (DNS rebinding) and read
the debug log; a slow or huge request head must not pin a connection or print a
traceback.  Raw sockets show exactly what goes over the wire; aiohttp's client
checks the normal path still works.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from asyncnet.creosote import Bucket, WebView, spew
from asyncnet.creosote._webguard import Gate, HeadGuard, WebViewStats

from .test_creosote_web import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.all_loops


async def raw_request(address: Any, head: bytes, timeout: float = 5.0) -> bytes:
    """Send ``head`` on a new connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection(address[0], address[1])
    try:
        writer.write(head)
        async with asyncio.timeout(timeout):
            return await reader.read()
    finally:
        writer.close()


def get(path: str, host: str, *extra: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *extra, "", ""]
    return "\r\n".join(lines).encode()


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


async def test_foreign_host_is_forbidden_own_names_are_served(caplog: Any) -> None:
    """X1.1: Host must name the bound address (DNS rebinding -> 403)."""
    caplog.set_level(logging.WARNING, logger="asyncnet.creosote")
    async with Bucket(port=0) as bucket, WebView(bucket, port=0) as view:
        port = view.address[1]
        await spew("secret in the log", port=bucket.address[1])
        for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1:1", ""):
            answer = await raw_request(view.address, get("/events", host))
            assert status(answer) == 403, (host, answer[:200])
            assert b"secret" not in answer
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
            assert status(await raw_request(view.address, get("/", host))) == 200, host
        async with aiohttp.ClientSession() as session:
            async with session.get(view.url, headers={"Host": "evil.example"}) as response:
                assert response.status == 403
        assert view.stats.forbidden_host == 5
    refusals = [r for r in caplog.records if "refused Host" in r.getMessage()]
    assert len(refusals) == 1  # rate-limited: one line for all five


async def test_foreign_origin_is_forbidden_same_origin_is_served() -> None:
    """X1.2: a cross-site Origin gets 403; no Origin or our own is fine."""
    async with Bucket(port=0) as bucket, WebView(bucket, port=0) as view:
        own = f"127.0.0.1:{view.address[1]}"
        for origin in ("http://attacker.example", "null", f"https://{own}", "http://localhost"):
            answer = await raw_request(view.address, get("/", own, f"Origin: {origin}"))
            assert status(answer) == 403, origin
        answer = await raw_request(view.address, get("/", own, f"Origin: http://{own}"))
        assert status(answer) == 200
        async with aiohttp.ClientSession() as session:
            headers = {"Origin": "http://attacker.example"}
            async with session.get(view.url + "events", headers=headers) as response:
                assert response.status == 403
        assert view.stats.forbidden_origin == 5


@pytest.mark.slow
async def test_slow_header_connections_are_closed_after_the_header_timeout(
    caplog: Any,
) -> None:
    """X1.3: 300 connections that never finish their head are all closed."""
    caplog.set_level(logging.WARNING, logger="asyncnet.creosote")
    count = 300
    async with Bucket(port=0) as bucket, WebView(bucket, port=0, header_timeout=0.5) as view:
        host, port = view.address[:2]
        streams = [await asyncio.open_connection(host, port) for _ in range(count)]
        try:
            for _, writer in streams:
                writer.write(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nX-Slow: a".encode())
            # Meanwhile a normal client is served.
            async with aiohttp.ClientSession() as session, session.get(view.url) as page:
                assert page.status == 200
            async with asyncio.timeout(20):  # generous: the timeout is 0.5 s
                closed = await asyncio.gather(*(reader.read() for reader, _ in streams))
            assert closed == [b""] * count  # EOF, and no response for an unfinished head
        finally:
            for _, writer in streams:
                writer.close()
        assert view.stats.header_timeouts == count
    lines = [r for r in caplog.records if "no complete head" in r.getMessage()]
    assert len(lines) == 1


async def test_oversized_header_gets_431_and_one_log_line_without_traceback(
    caplog: Any,
) -> None:
    """X1.4: a 9000-byte header -> 431, one log line, no aiohttp traceback."""
    caplog.set_level(logging.DEBUG)
    async with Bucket(port=0) as bucket, WebView(bucket, port=0) as view:
        own = f"127.0.0.1:{view.address[1]}"
        answer = await raw_request(view.address, get("/", own, "X-Big: " + "b" * 9000))
        assert status(answer) == 431
        # A head just under the limit is still served.
        answer = await raw_request(view.address, get("/", own, "X-Big: " + "b" * 7000))
        assert status(answer) == 200
        assert view.stats.headers_too_large == 1
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert not [r for r in caplog.records if "Error handling request" in r.getMessage()]
    lines = [r for r in caplog.records if "answered 431" in r.getMessage()]
    assert len(lines) == 1


async def test_token_is_required_on_every_request_when_asked_for() -> None:
    """X1.5: with a token (automatic beyond loopback) nothing is served without it."""
    async with Bucket(port=0) as bucket, WebView(bucket, port=0, token=True) as view:
        assert view.token is not None
        assert view.url.endswith(f"/?token={view.token}")
        base = f"http://127.0.0.1:{view.address[1]}/"
        jar = aiohttp.CookieJar(unsafe=True)  # browsers keep cookies for 127.0.0.1 too
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            for url in (base, base + "events", base + "app.js", base + "?token=wrong"):
                async with session.get(url) as response:
                    assert response.status == 403, url
            async with session.get(view.url) as page:  # sets the cookie for the page
                assert page.status == 200
                cookie = page.headers["Set-Cookie"]
                assert cookie.startswith(f"creosote_token_{view.address[1]}=")
                assert "HttpOnly" in cookie
            async with session.get(base + "app.js") as script:
                assert script.status == 200
        assert view.stats.forbidden_token == 4


async def test_malformed_requests_get_400_and_no_traceback(caplog: Any) -> None:
    """X1.6: aiohttp's parser errors become one line each, rate-limited."""
    caplog.set_level(logging.DEBUG)
    async with Bucket(port=0) as bucket, WebView(bucket, port=0) as view:
        own = f"127.0.0.1:{view.address[1]}"
        for _ in range(3):
            answer = await raw_request(view.address, get("/", own, "Content-Length: -5"))
            assert status(answer) == 400
        assert status(await raw_request(view.address, b"GARBAGE / HTTP/1.1\r\n\r\n")) == 400
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "Content-Length" in warnings[0].getMessage()


async def test_head_ending_in_bare_newlines_is_answered_not_timed_out() -> None:
    """X1.7: the head limit recognises LF LF as well as CRLF CRLF."""
    async with Bucket(port=0) as bucket, WebView(bucket, port=0, header_timeout=30) as view:
        head = f"GET / HTTP/1.1\nHost: 127.0.0.1:{view.address[1]}\n\n".encode()
        answer = await raw_request(view.address, head, timeout=10)
        assert answer.startswith(b"HTTP/1.")
        assert view.stats.header_timeouts == 0


def test_binding_beyond_loopback_turns_the_token_on() -> None:
    """X1.5: all_interfaces (or a non-loopback host) means a token; loopback not."""
    bucket = Bucket(port=0)
    assert WebView(bucket, all_interfaces=True).token is not None
    assert WebView(bucket, host="192.0.2.1").token is not None  # never bound here
    assert WebView(bucket).token is None
    assert WebView(bucket, host="::1").token is None
    assert WebView(bucket, host="localhost").token is None


@pytest.mark.browser
@pytest.mark.slow
async def test_token_page_goes_live_in_chromium() -> None:
    """X1.5: with a token, a real browser opening view.url gets the live stream
    (the token comes back as a cookie on the script and event requests)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install -y chromium)")
    playwright_api = pytest.importorskip(
        "playwright.async_api", reason="playwright is not installed (pip install playwright)"
    )
    async with Bucket(port=0) as bucket, WebView(bucket, port=0, token=True) as view:
        async with playwright_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000
            )
            try:
                page = await browser.new_page()
                await page.goto(view.url)
                await page.wait_for_selector('#status[data-state="live"]', timeout=15_000)
                await spew("seen with a token", port=bucket.address[1])
                await page.locator("#messages li").first.wait_for(timeout=15_000)
                texts = await page.locator("#messages li .text").all_text_contents()
            finally:
                await browser.close()
        assert view.stats.forbidden_token == 0
    assert texts == ["seen with a token"]


class _Inner(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = b""

    def data_received(self, data: bytes) -> None:
        self.data += data


class _Transport:
    """Just enough of a transport for HeadGuard (no socket: the scan is what is tested)."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def _guard(limit: int) -> tuple[Any, _Inner, _Transport]:
    inner, transport = _Inner(), _Transport()
    guard = HeadGuard(inner, Gate(WebViewStats(), None), 30.0, limit)
    guard.connection_made(transport)  # type: ignore[arg-type]
    return guard, inner, transport


@pytest.mark.parametrize("ending", [b"\r\n\r\n", b"\n\n"], ids=["crlf", "lf"])
async def test_head_scan_is_the_same_for_every_split(ending: bytes) -> None:
    """X1.7: any split of the head (and the byte after it) passes it on once."""
    head = b"GET / HTTP/1.1" + ending[: len(ending) // 2] + b"Host: h:1" + ending + b"X"
    for cut in range(len(head) + 1):
        guard, inner, transport = _guard(limit=len(head) - 1)  # the head fits exactly
        guard.data_received(head[:cut])
        guard.data_received(head[cut:])
        assert inner.data == head, cut
        assert not transport.closed
        guard.connection_lost(None)
    guard, inner, transport = _guard(limit=len(head) - 1)
    for byte in head:
        guard.data_received(bytes([byte]))
    assert inner.data == head
    guard.connection_lost(None)


async def test_head_one_byte_over_the_limit_gets_431_for_every_split() -> None:
    """X1.7: the limit holds at the boundary, however the bytes arrive."""
    head = b"GET / HTTP/1.1\r\nHost: h:1\r\n\r\n"
    for cut in range(len(head) + 1):
        guard, inner, transport = _guard(limit=len(head) - 1)
        guard.data_received(head[:cut])
        guard.data_received(head[cut:])
        assert inner.data == b""
        assert transport.written.startswith(b"HTTP/1.1 431 ")
        assert transport.closed
        guard.connection_lost(None)
