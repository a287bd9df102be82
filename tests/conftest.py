"""Suite-wide guards: loopback-only traffic, no stray loop errors, both event loops;
and the split ``make test`` runs by: serial tests apart, slow ones out of test-quick."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from asyncnet.testing import LoopExceptionCollector, loopback_only

from .ports import refused_port

# asyncnet's own plugin (asyncnet/pytest_plugin.py) is loaded by its entry point:
# registering it here as well would fail ("Plugin already registered").
pytest_plugins = ["pytester"]

# The web client honours the proxy variables, as curl does: a machine that sets them
# would send the suite's loopback fetches (and the demos it starts) to its proxy.
# Tests of proxies set the variables they need themselves.
for _name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
    os.environ.pop(_name, None)
    os.environ.pop(_name.upper(), None)
# Secrets the demos read from the environment: a developer's own would change what
# the demos the suite starts do (ask for nothing, log in elsewhere).
for _name in (
    "ASYNCNET_MAIL_PASSWORD",
    "ASYNCNET_FTP_PASSWORD",
    "ASYNCNET_HTTP_PASSWORD",
    "ASYNCNET_OAUTH_TOKEN",
):
    os.environ.pop(_name, None)

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


# Slow tests (half a second or more: ``make test-quick`` leaves them out) named here
# until their own files mark them; the others carry ``@pytest.mark.slow`` themselves.
SLOW_TESTS: frozenset[str] = frozenset(
    {
        "test_bench.py::test_bench_cli_refuses_bad_paths_before_running",
        "test_bench.py::test_cpu_seconds_count_a_reaped_busy_child",
        "test_bench.py::test_the_package_and_its_tour_do_not_import_the_benchmark",
        "test_bench_clients.py::test_every_mode_does_the_same_work",
        "test_creosote_bucket.py::test_burst_of_ten_thousand_is_counted_with_bounded_memory",
        "test_deadlines.py::test_a_client_that_keeps_talking_outlives_the_idle_timeout",
        "test_deadlines.py::test_a_completed_line_stops_the_line_clock",
        "test_deadlines.py::test_a_handler_at_work_is_not_an_idle_connection",
        "test_dns.py::test_hosts_parser_reads_back_what_was_written",
        "test_pytest_plugin_drive.py::test_teardown_ends_open_connections",
        "test_servers_tcp.py::test_upper_with_200_concurrent_clients",
        "test_typed_options.py::test_mypy_catches_a_misspelt_or_mistyped_option_in_a_user_file",
    }
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--part",
        choices=("all", "parallel", "serial"),
        default="all",
        help="asyncnet's suite: only the tests that may share the machine (parallel), "
        "only those that must not (serial), or all (the default)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "all_loops: run on the stdlib loop and on uvloop")


@pytest.hookimpl(tryfirst=True)  # before -m deselects by the markers added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the serial and slow tests; with ``--part``, keep one side of the split."""
    for item in items:
        if item.get_closest_marker("netns"):  # namespaces and links have global names
            item.add_marker(pytest.mark.serial)
        if isinstance(item, pytest.Function) and (
            f"{item.path.name}::{item.originalname}" in SLOW_TESTS
        ):
            item.add_marker(pytest.mark.slow)
    part = config.getoption("part")
    if part == "all":
        return
    keep = [item for item in items if bool(item.get_closest_marker("serial")) == (part == "serial")]
    if len(keep) < len(items):
        kept = set(keep)
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = keep


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move everything imported so far out of the collector's sight.

    Every test ends with a full ``gc.collect()`` (so that a task or transport the test
    dropped reports its error inside that test); over the heap of aiohttp, hypothesis,
    Twisted and every test module that costs tens of milliseconds per test, a large
    share of the whole suite.  Frozen objects are never scanned again, and what a test
    creates is still collected and reported as before.
    """
    gc.freeze()


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


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback TCP port that refuses connections for the whole test (tests/ports.py)."""
    with refused_port() as port:
        yield port
