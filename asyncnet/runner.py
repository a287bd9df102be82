"""Running a program: the event loop (uvloop when installed), signals, logging.

Only scripts use this module.  Code that embeds asyncnet servers in its own asyncio
program uses ``async with server:`` and never calls anything here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

__all__ = [
    "catch_signals",
    "configure_logging",
    "loop_factory",
    "run",
    "run_servers",
    "wait_for_signal",
]

T = TypeVar("T")

logger = logging.getLogger("asyncnet")


class Servable(Protocol):
    """What :func:`run_servers` runs: anything with the asyncnet lifecycle.

    Servers, the creosote ``Bucket`` and ``WebView``...: ``start``, ``serve_forever``,
    ``stop`` and ``async with``.
    """

    async def start(self) -> Any: ...
    async def serve_forever(self) -> None: ...
    async def stop(self, grace: float | None = None) -> None: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def loop_factory(use_uvloop: bool | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Return ``uvloop.new_event_loop`` when uvloop should and can be used, else ``None``.

    ``use_uvloop=None`` means "if installed", unless the environment variable
    ``ASYNCNET_NO_UVLOOP`` is set; ``True`` insists (ImportError if missing).
    """
    if use_uvloop is False or (use_uvloop is None and os.environ.get("ASYNCNET_NO_UVLOOP")):
        return None
    try:
        import uvloop
    except ImportError:
        if use_uvloop:
            raise
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], *, use_uvloop: bool | None = None) -> T:
    """``asyncio.run(main)`` on uvloop when it is installed (the ``speed`` extra)."""
    with asyncio.Runner(loop_factory=loop_factory(use_uvloop)) as runner:
        return runner.run(main)


@contextlib.contextmanager
def catch_signals(
    signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM),
) -> Iterator[asyncio.Future[int]]:
    """Handle ``signals`` in the running loop for the block; yield a future of the first.

    Install this *before* announcing that a server is ready: a signal that arrives
    between the announcement and the handler would otherwise kill the process
    with the default action instead of a graceful shutdown.  A second SIGINT while
    the block is still running (a graceful shutdown, say) cancels the task that
    entered it, so a second Ctrl-C stops at once.  Where the loop cannot
    install signal handlers (Windows, a non-main thread) the future never
    completes and Ctrl-C arrives as cancellation instead.
    """
    loop = asyncio.get_running_loop()
    received: asyncio.Future[int] = loop.create_future()
    installed = []
    main = asyncio.current_task()

    def on_signal(signum: int) -> None:
        if not received.done():
            received.set_result(signum)
        elif signum == signal.SIGINT == received.result() and main is not None and not main.done():
            # A second Ctrl-C means "now": stop waiting for the graceful shutdown.  Only
            # SIGINT twice: a worker gets a group Ctrl-C *and* its supervisor's SIGTERM,
            # in either order, and neither may cut its graceful stop short.
            logger.warning("second signal: stopping at once, without waiting for handlers")
            main.cancel()

    for signum in signals:
        try:
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        yield received
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        if not received.done():
            received.cancel()


async def wait_for_signal(signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)) -> int:
    """Wait until one of ``signals`` arrives; return its number."""
    with catch_signals(signals) as received:
        return await received


def run_servers(
    *servers: Servable,
    ready: Callable[[Sequence[Any]], Any] | None = None,
    until: Callable[[], Awaitable[Any]] | None = None,
    use_uvloop: bool | None = None,
) -> int:
    """Start ``servers``, call ``ready(servers)``, serve until SIGINT/SIGTERM; return 0.

    ``servers`` are anything with the asyncnet lifecycle (:class:`Servable`), e.g. a
    creosote ``Bucket`` next to a ``WebView``; they start in order and stop in reverse.

    Shutdown is graceful (each server's ``grace``), so a demo stopped with Ctrl-C or
    ``kill`` exits with status 0.  ``until`` ends the run early when it returns (a
    scripted session, for instance); a signal still stops it first.
    """

    async def main() -> int:
        try:
            return await serve()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if first_signal and task is not None:  # the second signal cut shutdown short
                task.uncancel()
                return 130
            raise

    first_signal: list[int] = []

    async def serve() -> int:
        with catch_signals() as stopped:
            stopped.add_done_callback(
                lambda f: first_signal.append(f.result()) if not f.cancelled() else None
            )
            async with contextlib.AsyncExitStack() as stack:
                for server in servers:
                    await stack.enter_async_context(server)
                if ready is not None:
                    ready(servers)
                if until is None:
                    await stopped
                else:  # whichever comes first: the scripted end, or a signal
                    scripted = asyncio.ensure_future(until())
                    await asyncio.wait({scripted, stopped}, return_when=asyncio.FIRST_COMPLETED)
                    if not scripted.done():
                        scripted.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await scripted
        return 0

    try:
        return run(main(), use_uvloop=use_uvloop)
    except KeyboardInterrupt:  # a second Ctrl-C during the graceful shutdown
        return 130


def configure_logging(verbose: int = 0, *, stream: Any = None) -> None:
    """Log the ``asyncnet`` logger to stderr: warnings by default, ``-v`` info, ``-vv`` debug."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("asyncnet")
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
