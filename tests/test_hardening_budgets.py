"""The bucket's memory and work are bounded in bytes, not only in messages (hardening X4).

One 4 MiB framed message used to block the loop for seconds (escaping it for the
console and the web page), print a 16 MB line, and history could grow to GiBs.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from asyncnet.creosote import Bucket, Emitter, Message, WebView, format_line
from asyncnet.creosote._formatting import MAX_LINE_TEXT
from asyncnet.creosote._protocol import CHUNK_OVERHEAD, CUT_MARKER, Reassembler, chunk_framed

BIG = bytes(range(256)) * (4 * 1024 * 1024 // 256)  # 4 MiB, every byte needs escaping
RCVBUF = 4 * 1024 * 1024


async def measure_lag(stop: asyncio.Event, lags: list[float]) -> None:
    """Loop lag: the longest gap between two wake-ups of a task that never stops waking.

    Each round awaits an event that a ``call_soon`` callback sets, then naps 1 ms; a
    callback that holds the loop shows up as a long gap, whenever it happens.
    """
    loop = asyncio.get_running_loop()
    last = time.monotonic()
    while not stop.is_set():
        ran = asyncio.Event()
        loop.call_soon(ran.set)
        await ran.wait()
        await asyncio.sleep(0.001)  # the probe's own pace: it measures, it waits for nothing
        now = time.monotonic()
        lags.append(now - last)
        last = now


@pytest.mark.all_loops
async def test_a_4_mib_message_never_blocks_the_loop_and_is_cut_with_a_marker() -> None:
    """X4.1: a 4 MiB message is cut at 64 KiB; the loop, the web view and the
    next message carry on; the console line is bounded."""
    lines: list[str] = []
    got: list[Message] = []
    arrived = asyncio.Event()

    def show(message: Message) -> None:
        lines.append(format_line(message))
        got.append(message)
        if message.data == b"after":
            arrived.set()

    lags: list[float] = []
    stop = asyncio.Event()
    async with (
        Bucket(port=0, callback=show, receive_buffer=RCVBUF) as bucket,
        WebView(bucket, port=0) as view,
    ):
        probe = asyncio.create_task(measure_lag(stop, lags))
        limit = 8 * 1024 * 1024  # the sender does not cut: the bucket must
        async with Emitter(*bucket.address, framed=True, max_message_size=limit) as emitter:
            sending = asyncio.create_task(emitter.send(BIG))
            async with aiohttp.ClientSession() as session:
                async with asyncio.timeout(10), session.get(view.url) as page:
                    assert page.status == 200
            await sending
            await emitter.send("after")
        async with asyncio.timeout(10):
            await arrived.wait()
        stop.set()
        await probe
        stats = bucket.stats
    big, after = got[0], got[-1]
    assert big.reason == "too large"
    assert big.data.endswith(CUT_MARKER)
    assert len(big.data) <= 64 * 1024
    assert after.complete
    assert stats.cut == 1
    assert stats.chunks_dropped > 0
    assert stats.partial_bytes == 0
    assert max(len(line) for line in lines) < MAX_LINE_TEXT + 200
    assert "more bytes not shown" in lines[0]
    # Generous: cutting makes the work ~64 KiB's worth (milliseconds); 4 MiB took seconds.
    assert max(lags) < 0.5, f"the loop was blocked for {max(lags):.3f} s"


def test_console_line_is_cut_with_a_marker() -> None:
    """X4.6: format_line shows at most max_text characters and says so."""
    message = Message(b"\x1b" * 60_000, ("127.0.0.1", 1), 0.0)
    line = format_line(message, max_text=1000)
    assert len(line) < 1200
    assert line.endswith("...[59000 more bytes not shown]")
    assert "\x1b" not in line
    assert format_line(Message(b"short", ("127.0.0.1", 1), 0.0)).endswith(" short")


def test_tiny_chunks_are_charged_their_overhead() -> None:
    """X4.3: a flood of 1-byte chunks cannot hold more than max_partial_bytes."""
    reassembler = Reassembler(max_partials=100_000, max_partial_bytes=10_000)
    for message_id in range(2000):
        first = chunk_framed(b"ab", message_id, 19)[0]  # 1-byte chunks, 2 of them
        reassembler.feed(first, ("127.0.0.1", 40000), 0.0)
    assert reassembler.partial_bytes <= 10_000
    assert reassembler.partial_messages <= 10_000 // (1 + CHUNK_OVERHEAD) + 1


async def test_subscription_queue_is_bounded_in_bytes() -> None:
    """X4.4: a consumer that falls behind holds at most max_queue_bytes."""
    async with Bucket(port=0, max_queue_bytes=256 * 1024, receive_buffer=RCVBUF) as bucket:
        async with Emitter(*bucket.address, framed=True) as emitter:
            for n in range(12):
                await emitter.send(bytes([65 + n]) * 60_000)
            await emitter.send(b"last")
        received: list[Message] = []
        async with asyncio.timeout(10):
            async for message in bucket:
                received.append(message)
                if message.data == b"last":
                    break
    assert sum(len(m.data) for m in received) <= 256 * 1024
    assert bucket.stats.queue_dropped >= 12 - 256 * 1024 // 60_000


async def read_event_texts(response: aiohttp.ClientResponse, until: str) -> list[str]:
    texts: list[str] = []
    async with asyncio.timeout(10):
        while True:
            line = (await response.content.readline()).decode()
            if line.startswith("data: "):
                texts.append(json.loads(line[6:])["text"])
                if texts[-1] == until:
                    return texts


async def test_web_history_is_bounded_in_bytes() -> None:
    """X4.5: a page that connects late gets at most history_bytes of history."""
    async with Bucket(port=0, receive_buffer=RCVBUF) as bucket:
        async with WebView(bucket, port=0, history_bytes=150_000) as view:
            async with Emitter(*bucket.address, framed=True) as emitter:
                for n in range(10):
                    await emitter.send(bytes([65 + n]) * 60_000)
                await emitter.send("history end")
                # the view's pump is a task: a subscriber behind it sees the same order
                done = bucket.subscribe()
                await emitter.send("mark")
                async with asyncio.timeout(10):
                    async for message in done:
                        if message.data == b"mark":
                            break
            async with aiohttp.ClientSession() as session:
                async with session.get(view.url + "events") as response:
                    texts: list[Any] = await read_event_texts(response, "history end")
    assert texts[-1] == "history end"
    assert sum(len(t) for t in texts) <= 150_000
    assert len(texts) < 11
