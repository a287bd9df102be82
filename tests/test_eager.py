"""The eager coroutine driver behind the line path, without sockets."""

from __future__ import annotations

import asyncio

import pytest

from asyncnet._eager import PENDING, continue_in_task, step


async def returns_at_once(x: int) -> int:
    return x * 2


async def suspends(fut: asyncio.Future[int]) -> int:
    return await fut + 1


async def test_step_returns_value_without_a_task() -> None:
    before = len(asyncio.all_tasks())
    assert step(returns_at_once(21)) == (42, None)
    assert len(asyncio.all_tasks()) == before


async def test_suspended_coroutine_is_finished_by_a_task() -> None:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    coro = suspends(fut)
    value, yielded = step(coro)
    assert value is PENDING
    task = continue_in_task(coro, yielded)
    fut.set_result(41)
    assert await task == 42


async def test_exceptions_propagate_from_both_halves() -> None:
    async def fails_now() -> None:
        raise KeyError("now")

    with pytest.raises(KeyError, match="now"):
        step(fails_now())

    async def fails_later() -> None:
        await asyncio.sleep(0)
        raise KeyError("later")

    coro = fails_later()
    value, yielded = step(coro)
    assert value is PENDING
    with pytest.raises(KeyError, match="later"):
        await continue_in_task(coro, yielded)


async def test_cancelling_the_task_cancels_the_coroutine() -> None:
    cleaned = asyncio.Event()

    async def waits_forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    coro = waits_forever()
    _, yielded = step(coro)
    task = continue_in_task(coro, yielded)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned.is_set()


async def test_values_sent_by_the_task_reach_the_coroutine() -> None:
    async def several_waits() -> list[int]:
        results = []
        for n in range(3):
            await asyncio.sleep(0)
            results.append(await asyncio.sleep(0, result=n))
        return results

    coro = several_waits()
    _, yielded = step(coro)
    assert await continue_in_task(coro, yielded) == [0, 1, 2]
