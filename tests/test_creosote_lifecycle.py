"""Bucket, Emitter and WebView share the asyncnet lifecycle.

``start() -> self``, sync ``close()``, ``wait_closed()``, ``stop(grace)``, ``async with``;
the bucket and the web view also ``serve_forever()``, so ``run_servers`` runs them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from asyncnet import run_servers
from asyncnet.creosote import Bucket, Emitter, Message, WebView


async def test_bucket_close_then_wait_closed_and_stop_with_grace() -> None:
    bucket = await Bucket(port=0).start()
    async with Emitter(port=bucket.address[1], framed=True) as emitter:
        assert await emitter.send("one") == 1
    async with asyncio.timeout(5):
        first = await anext(aiter(bucket))
    assert first.data == b"one"
    bucket.close()  # returns at once
    await bucket.wait_closed()
    await bucket.stop(grace=0.1)  # idempotent after close


async def test_bucket_and_view_serve_forever_until_cancelled() -> None:
    bucket = await Bucket(port=0).start()
    view = await WebView(bucket, port=0).start()
    serving = asyncio.create_task(bucket.serve_forever())  # started: serve_forever just waits
    viewing = asyncio.create_task(view.serve_forever())
    async with aiohttp.ClientSession() as session, session.get(view.url) as page:
        assert page.status == 200
    view.close()
    async with asyncio.timeout(5):
        await viewing  # close() ends serve_forever
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    assert not bucket.server.is_serving


async def test_emitter_stop_and_send_verb() -> None:
    async with Bucket(port=0) as bucket:
        emitter = await Emitter(port=bucket.address[1]).start()
        assert emitter.is_open
        assert await emitter.send(b"hello") == 1
        await emitter.stop(grace=0.5)
        assert not emitter.is_open
        assert await emitter.send(b"after") == 0


def test_run_servers_runs_a_bucket_and_its_web_view() -> None:
    """The creosote demo's endpoints go to run_servers (no hand-rolled signals)."""
    got: list[Message] = []
    arrived = asyncio.Event()

    def collect(message: Message) -> None:
        got.append(message)
        arrived.set()

    bucket = Bucket(port=0, callback=collect)
    view = WebView(bucket, port=0)
    seen: list[Any] = []

    def ready(started: Any) -> None:
        seen.extend(started)

    async def session() -> None:
        async with Emitter(port=bucket.address[1]) as emitter:
            await emitter.send("through run_servers")
        async with asyncio.timeout(5):
            await arrived.wait()
        async with aiohttp.ClientSession() as client, client.get(view.url) as page:
            assert page.status == 200

    assert run_servers(bucket, view, ready=ready, until=session, use_uvloop=False) == 0
    assert seen == [bucket, view]
    assert [m.data for m in got] == [b"through run_servers"]
    assert not bucket.server.is_serving
