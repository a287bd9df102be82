"""The live web view: the SSE stream with aiohttp's client, the page in headless Chromium.

Everything binds 127.0.0.1:0.  Message text is hostile on purpose (C3): it must reach
the page as text, never as markup.
"""

from __future__ import annotations

import asyncio
import errno
import json
import re
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from asyncnet.creosote import Bucket, WebView, spew
from asyncnet.errors import NetworkError

HOSTILE = "<script>document.title='pwned'</script><b>bold</b> & \x1b[2J"
TIME = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$")


async def read_events(response: aiohttp.ClientResponse, count: int) -> list[tuple[int, Any]]:
    """Parse ``count`` server-sent events (id, decoded JSON data) from the stream."""
    events: list[tuple[int, Any]] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(10):
        while len(events) < count:
            raw = await response.content.readline()
            if not raw:
                raise AssertionError(f"stream ended after {len(events)} events")
            line = raw.decode().rstrip("\n")
            if not line:
                if "data" in fields:
                    events.append((int(fields["id"]), json.loads(fields["data"])))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
    return events


async def test_event_stream_sends_history_then_live_messages_escaped() -> None:
    """C3: the stream carries the escaped text; sender and time come with each message."""
    async with Bucket(port=0) as bucket, WebView(bucket, port=0) as view:
        sender_port = bucket.address[1]
        await spew("first, before anyone looked", port=sender_port)
        await spew(HOSTILE, port=sender_port)
        async with aiohttp.ClientSession() as session:
            async with session.get(view.url + "events") as response:
                assert response.headers["Content-Type"].startswith("text/event-stream")
                history = await read_events(response, 2)
                await spew("live", port=sender_port)
                [live] = await read_events(response, 1)
            # Reconnecting with Last-Event-ID resumes after it: nothing is sent twice.
            headers = {"Last-Event-ID": str(history[1][0])}
            async with session.get(view.url + "events", headers=headers) as again:
                [resumed] = await read_events(again, 1)
    ids = [history[0][0], history[1][0], live[0]]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert [e[1]["text"] for e in [*history, live]] == [
        "first, before anyone looked",
        "<script>document.title='pwned'</script><b>bold</b> & \\x1b[2J",
        "live",
    ]
    assert resumed == live
    for _, event in [*history, live]:
        assert re.fullmatch(r"127\.0\.0\.1:\d+", event["sender"])
        assert TIME.match(event["time"])
        assert event["complete"] is True


async def test_page_script_and_headers_are_safe() -> None:
    async with Bucket(port=0) as bucket, WebView(bucket, port=0) as view:
        async with aiohttp.ClientSession() as session:
            async with session.get(view.url) as page:
                html = await page.text()
                csp = page.headers["Content-Security-Policy"]
            async with session.get(view.url + "app.js") as script:
                js = await script.text()
    assert f"udp://127.0.0.1:{bucket.address[1]}" in html
    assert '<ol id="messages">' in html
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "textContent" in js
    assert "innerHTML" not in js
    assert "prepend" in js  # newest at the top


async def test_stopping_the_view_ends_live_streams() -> None:
    async with Bucket(port=0) as bucket:
        view = await WebView(bucket, port=0).start()
        async with aiohttp.ClientSession() as session:
            async with session.get(view.url + "events") as response:
                assert (await response.content.readline()).startswith(b"retry:")
                await view.stop()
                async with asyncio.timeout(5):
                    rest = await response.content.read()
    assert b"data:" not in rest


async def test_web_port_in_use_names_the_port() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        async with Bucket(port=0) as bucket:
            with pytest.raises(NetworkError, match=rf"tcp port {port}\b") as info:
                await WebView(bucket, port=port).start()
    assert info.value.errno == errno.EADDRINUSE


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.browser
@pytest.mark.slow
async def test_page_shows_messages_live_in_chromium() -> None:
    """The page in a real headless Chromium: newest first, sender and time, text not markup."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install -y chromium)")
    playwright_api = pytest.importorskip(
        "playwright.async_api", reason="playwright is not installed (pip install playwright)"
    )
    async with Bucket(port=0) as bucket, WebView(bucket, port=0) as view:
        port = bucket.address[1]
        await spew("before the page opened", port=port)
        async with playwright_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000
            )
            try:
                page = await browser.new_page()
                await page.goto(view.url)
                await page.wait_for_selector('#status[data-state="live"]', timeout=15_000)
                await spew(HOSTILE, port=port)
                await spew("newest", port=port)
                # A locator, not wait_for_function: the page's CSP forbids eval, which
                # wait_for_function's polling needs once its first check comes up short.
                await page.locator("#messages li").nth(2).wait_for(timeout=15_000)
                texts = await page.locator("#messages li .text").all_text_contents()
                senders = await page.locator("#messages li .sender").all_text_contents()
                times = await page.locator("#messages li .time").all_text_contents()
                bold = await page.locator("#messages b, #messages script").count()
                title = await page.title()
            finally:
                await browser.close()
    assert texts == [
        "newest",
        "<script>document.title='pwned'</script><b>bold</b> & \\x1b[2J",
        "before the page opened",
    ]
    assert bold == 0  # the markup in the message stayed text
    assert title == "creosote bucket"  # and its script never ran
    assert all(re.fullmatch(r"127\.0\.0\.1:\d+", s) for s in senders)
    assert all(TIME.match(t) for t in times)
