"""Eager handler coroutines, seen from outside: through a datagram server and its events.

A handler coroutine that finishes without suspending runs inside the datagram
callback (no task is made); one that suspends is finished by a task.  Both halves
report their errors, a suspended one is cancelled on shutdown, and values sent
into it arrive.  (Tested through public API only: ``udp_server`` and
``server.events``.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from asyncnet import DatagramClient, DatagramHandler, udp_server


class Probe(DatagramHandler):
    """Replies with whether it ran inside a task, after suspending when asked to."""

    def __init__(self) -> None:
        super().__init__()
        self.release: asyncio.Future[None] | None = None
        self.cleaned = asyncio.Event()
        self.entered = asyncio.Event()

    async def handle(self, data: bytes, addr: Any) -> bytes:
        if data == b"now":
            return b"task" if asyncio.current_task() else b"no task"
        if data == b"fail now":
            raise KeyError("now")
        if data == b"several":
            results = []
            for n in range(3):
                await asyncio.sleep(0)
                results.append(await asyncio.sleep(0, result=n))
            return repr(results).encode()
        if data == b"fail later":
            await asyncio.sleep(0)
            raise KeyError("later")
        self.entered.set()
        if data == b"forever":
            try:
                await asyncio.Event().wait()
            finally:
                self.cleaned.set()
        assert self.release is not None
        await self.release
        return b"task" if asyncio.current_task() else b"no task"


async def test_a_coroutine_that_does_not_suspend_runs_without_a_task() -> None:
    async with udp_server(Probe) as server, await DatagramClient.connect(*server.address) as c:
        assert await c.request(b"now") == b"no task"


async def test_a_suspended_coroutine_is_finished_by_a_task() -> None:
    probe = Probe()
    probe.release = asyncio.get_running_loop().create_future()
    async with udp_server(probe) as server, await DatagramClient.connect(*server.address) as c:
        request = asyncio.ensure_future(c.request(b"wait"))
        async with asyncio.timeout(5):
            await probe.entered.wait()
        assert server.events.datagrams == 0  # suspended: not finished with yet
        probe.release.set_result(None)
        assert await request == b"task"
        assert await c.request(b"several") == b"[0, 1, 2]"


async def test_exceptions_from_both_halves_are_counted_and_serving_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with udp_server(Probe) as server:
        async with await DatagramClient.connect(*server.address, timeout=0.2, retries=0) as c:
            c.transport.sendto(b"fail now")
            c.transport.sendto(b"fail later")
            await server.events.wait_datagrams(2, timeout=5)
            assert server.stats.handler_errors == 2
            assert await c.request(b"now") == b"no task"
    failures = [r.getMessage() for r in caplog.records if "failed for a datagram" in r.message]
    assert any("KeyError('now')" in m for m in failures)
    assert any("KeyError('later')" in m for m in failures)


async def test_shutdown_cancels_a_suspended_coroutine_and_runs_its_finally() -> None:
    probe = Probe()
    async with udp_server(probe, grace=0.05) as server:
        async with await DatagramClient.connect(*server.address) as c:
            c.transport.sendto(b"forever")
            async with asyncio.timeout(5):
                await probe.entered.wait()
    assert probe.cleaned.is_set()
    assert server.events.datagrams == 1  # cancelled counts as finished with
