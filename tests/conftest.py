"""Suite-wide guards: loopback-only traffic, no stray loop errors, both event loops."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from asyncnet.testing import LoopExceptionCollector, loopback_only

# asyncnet's own plugin (asyncnet/pytest_plugin.py) is loaded by its entry point:
# registering it here as well would fail ("Plugin already registered").
pytest_plugins = ["pytester"]

try:
    import uvloop
except ImportError:  # the speed extra is optional; uvloop-parametrised tests shrink
    uvloop = None


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run tests marked ``all_loops`` on the stdlib loop and on uvloop."""
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if item.get_closest_marker("all_loops") and uvloop is not None:
        factories["uvloop"] = uvloop.new_event_loop
    return factories


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "all_loops: run on the stdlib loop and on uvloop")


@pytest.fixture(autouse=True)
def _loopback_guard() -> Iterator[list[str]]:
    """Harness: any connect/send to a non-loopback address fails the test at once."""
    with loopback_only() as refused:
        yield refused
    assert not refused, f"non-loopback traffic was attempted: {refused}"


@pytest.fixture(autouse=True)
def _asyncnet_logger_restored() -> Iterator[None]:
    """Harness: a test that runs a CLI in-process (which configures the ``asyncnet``
    logger on the captured stderr) must not leave a handler on a stream that pytest
    closes afterwards ("--- Logging error --- I/O operation on closed file")."""
    loggers = [logging.getLogger(name) for name in ("asyncnet", "mail.log", "aiohttp.access")]
    saved = [(log, log.handlers[:], log.level, log.propagate) for log in loggers]
    yield
    for log, handlers, level, propagate in saved:
        log.handlers[:] = handlers
        log.setLevel(level)
        log.propagate = propagate


@pytest.fixture(autouse=True)
async def _loop_exceptions() -> AsyncIterator[LoopExceptionCollector]:
    """Harness: nothing may reach the loop's exception handler during a test."""
    collector = LoopExceptionCollector()
    collector.install(asyncio.get_running_loop())
    yield collector
    gc.collect()
    await asyncio.sleep(0)
    collector.uninstall()
    assert not collector.contexts, collector.messages


@pytest.fixture
def loop_exceptions(_loop_exceptions: LoopExceptionCollector) -> LoopExceptionCollector:
    """The collector, for tests that expect (and then clear) loop errors."""
    return _loop_exceptions
