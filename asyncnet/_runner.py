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
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = [
    "Servable",
    "catch_signals",
    "configure_logging",
    "loop_factory",
    "run",
    "run_servers",
    "wait_for_signal",
]

T = TypeVar("T")

logger = logging.getLogger("asyncnet")


@runtime_checkable
class Servable(Protocol):
    """What :func:`run_servers` runs: anything with the endpoint lifecycle.

    Servers, the creosote bucket and web view, and your own objects qualify
    (duck-typed: nothing to inherit; subclass :class:`asyncnet.Endpoint` to get
    ``stop`` and ``async with`` from ``start``/``close``/``wait_closed``).
    """

    def start(self) -> Awaitable[Any]:
        """Bind/connect and begin serving."""
        ...

    def serve_forever(self) -> Awaitable[Any]:
        """Serve until stopped (returns when the endpoint has closed)."""
        ...

    def stop(self, grace: float | None = None) -> Awaitable[Any]:
        """Close gracefully and wait until closed."""
        ...


S = TypeVar("S", bound=Servable)


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
    the block is still running (a graceful shutdown, say) raises
    ``KeyboardInterrupt`` out of the loop, as Ctrl-C does in plain Python: the
    loop's runner then cancels whatever is left, so a second Ctrl-C stops at once.
    Where the loop cannot install signal handlers (Windows, a non-main thread) the
    future never completes and Ctrl-C arrives as cancellation instead.
    """
    loop = asyncio.get_running_loop()
    received: asyncio.Future[int] = loop.create_future()
    installed = []

    def on_signal(signum: int) -> None:
        if not received.done():
            received.set_result(signum)
        elif signum == signal.SIGINT == received.result():
            # A second Ctrl-C means "now": stop waiting for the graceful shutdown.  Only
            # SIGINT twice: a worker gets a group Ctrl-C *and* its supervisor's SIGTERM,
            # in either order, and neither may cut its graceful stop short.
            logger.warning("second signal: stopping at once, without waiting for handlers")
            raise KeyboardInterrupt

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
    *servers: S,
    ready: Callable[[Sequence[S]], Any] | None = None,
    until: Callable[[], Awaitable[Any]] | None = None,
    use_uvloop: bool | None = None,
) -> int:
    """Start ``servers``, call ``ready(servers)``, serve until SIGINT/SIGTERM; return 0.

    Each server is anything :class:`Servable` (``start``/``serve_forever``/``stop``).
    Shutdown is graceful (each server's ``grace``), in reverse order of start, so a
    demo stopped with Ctrl-C or ``kill`` exits with status 0.  ``until`` ends the
    run early when it returns (a scripted session, for instance); a signal still
    stops it first.  The run also ends when a server's ``serve_forever`` returns
    (it closed itself) or fails (the error propagates, after the others stopped).
    """

    async def main() -> int:
        with catch_signals() as stopped:
            serving: list[asyncio.Future[Any]] = []
            try:
                async with contextlib.AsyncExitStack() as stack:
                    for server in servers:
                        await server.start()
                        stack.push_async_callback(server.stop)
                    serving = [asyncio.ensure_future(s.serve_forever()) for s in servers]
                    if ready is not None:
                        ready(servers)
                    ends: set[asyncio.Future[Any]] = {stopped, *serving}
                    scripted = asyncio.ensure_future(until()) if until is not None else None
                    if scripted is not None:  # whichever comes first
                        ends.add(scripted)
                    try:
                        await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        if scripted is not None and not scripted.done():
                            scripted.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await scripted
            finally:
                for task in serving:
                    task.cancel()
                for task in serving:  # a server that failed on its own: say so
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
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
