"""server.events: tests wait for "connection opened/closed" and "datagram handled"."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from asyncnet import (
    DatagramClient,
    DatagramHandler,
    LineClient,
    OperationTimeout,
    ServerEvents,
    tcp_server,
    udp_server,
)

from .helpers import Upper, read_all

pytestmark = pytest.mark.all_loops


class Slow(DatagramHandler):
    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def handle(self, data: bytes, addr: Any) -> bytes | None:
        if data == b"wait":
            await self.release.wait()
        return data


async def test_opened_and_closed_are_counted_and_awaitable() -> None:
    async with tcp_server(Upper, max_connections=2) as server:
        events = server.events
        assert isinstance(events, ServerEvents)
        a = await LineClient.connect(*server.address, timeout=5)
        b = await LineClient.connect(*server.address, timeout=5)
        await events.wait_opened(2, timeout=5)
        assert (events.opened, events.closed, events.open) == (2, 0, 2)
        reader, writer = await asyncio.open_connection(*server.address)  # refused: not counted
        assert await read_all(reader)
        writer.close()
        await a.stop()
        await events.wait_closed(1, timeout=5)
        assert server.stats.connections_active == 1  # stats are updated before the event
        await b.stop()
        await events.wait_idle(timeout=5)
        assert (events.opened, events.closed) == (2, 2)
        assert server.stats.connections_refused == 1


async def test_wait_for_times_out_naming_what_it_waited_for() -> None:
    async with tcp_server(Upper) as server:
        with pytest.raises(OperationTimeout, match="3 connections") as info:
            await server.events.wait_opened(3, timeout=0.05)
    assert isinstance(info.value, TimeoutError)
    assert server.events.waiting == 0


async def test_a_failing_condition_fails_its_waiter_not_the_server() -> None:
    async with tcp_server(Upper) as server:

        def broken() -> bool:
            if server.events.opened:
                raise ZeroDivisionError("broken condition")
            return False

        waiter = asyncio.ensure_future(server.events.wait_for(broken, timeout=5))
        await asyncio.sleep(0)  # the waiter is registered (it is our own task)
        async with await LineClient.connect(*server.address, timeout=5) as client:
            with pytest.raises(ZeroDivisionError):
                await waiter
            assert await client.request("still") == "STILL"


async def test_datagrams_handled_counts_replies_suspended_and_dropped() -> None:
    slow = Slow()
    async with udp_server(slow, max_pending=1) as server:
        async with await DatagramClient.connect(*server.address, timeout=5) as client:
            client.transport.sendto(b"wait")  # suspends, holding the only pending slot
            client.transport.sendto(b"dropped")  # over max_pending: dropped at once
            await server.events.wait_datagrams(1, timeout=5)
            assert server.stats.datagrams_dropped == 1
            slow.release.set()
            await server.events.wait_datagrams(2, timeout=5)
            assert server.stats.datagrams_out == 1
            assert await client.request(b"x") in (b"x", b"wait")  # UDP: a late reply may win
            await server.events.wait_datagrams(3, timeout=5)
        assert server.events.datagrams == 3
