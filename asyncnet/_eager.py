"""Run a coroutine eagerly: step it in place, and make a task only if it suspends.

A line protocol that wrapped every ``handle_line()`` call in a task would pay for a
task and a loop round trip per line; most handlers never suspend (``upper()`` does
not), so asyncnet drives the coroutine with ``send(None)`` right where the line was
parsed.  Only when the coroutine really waits on something is it handed, already
started, to a task via :func:`continue_in_task`, which forwards what the task sends
or throws exactly like ``yield from`` would.

The one visible difference: code *before* the first ``await`` runs outside any task,
so ``asyncio.current_task()`` is ``None`` there and ``asyncio.timeout()`` refuses to
start.  Handlers that need a task from their first line set ``run_in_task = True``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["PENDING", "continue_in_task", "start", "step"]


class _Pending:
    __slots__ = ()

    def __repr__(self) -> str:
        return "PENDING"


PENDING: Any = _Pending()
"""Returned by :func:`step` (as the result) when the coroutine suspended."""


def step(coro: Coroutine[Any, Any, Any]) -> tuple[Any, Any]:
    """Advance ``coro`` to its first suspension; return ``(result, yielded)``.

    ``result`` is the coroutine's return value, or :data:`PENDING` when it suspended,
    in which case ``yielded`` is what it yielded (pass both to
    :func:`continue_in_task`).  Exceptions raised by the coroutine propagate.
    """
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return stop.value, None
    return PENDING, yielded


class _Resume:
    """Awaitable that resumes a coroutine suspended outside any task."""

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded = self._coro, self._yielded
        self._coro = self._yielded = None  # type: ignore[assignment]
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # CancelledError thrown in by Task.cancel()
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _finish(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    return await _Resume(coro, yielded)


def continue_in_task(
    coro: Coroutine[Any, Any, Any], yielded: Any, *, name: str | None = None
) -> asyncio.Task[Any]:
    """Wrap a coroutine that :func:`step` left suspended in a task that finishes it."""
    return asyncio.get_running_loop().create_task(_finish(coro, yielded), name=name)


def start(result: Any, *, in_task: bool, expected: str) -> tuple[Any, asyncio.Future[Any] | None]:
    """Start what a handler returned: ``(value, None)`` if a coroutine finished without
    suspending, else ``(PENDING, task)`` carrying on with it.

    A coroutine is stepped in place unless ``in_task``; any other awaitable becomes a
    task; anything else is a ``TypeError`` saying the handler must return ``expected``.
    """
    if inspect.iscoroutine(result) and not in_task:
        value, yielded = step(result)
        if value is not PENDING:
            return value, None
        return PENDING, continue_in_task(result, yielded)
    if inspect.isawaitable(result):
        return PENDING, asyncio.ensure_future(result)
    raise TypeError(f"{expected}, not {type(result).__name__}")
