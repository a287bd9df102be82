"""What the load generator's phases share: ping-pong clients, a run's state and its numbers.

The TCP, fairness and idle-memory phases (:mod:`.loadgen`, :mod:`.fairness`) all drive
:class:`PingPong` connections: a client sends a 64-byte line and waits for exactly its
length back (the upper service answers a line with a line of the same size), with
plain ``asyncio.Protocol`` callbacks and no task per request, so that the generator
costs as little CPU per request as Python allows.  A phase measures between two
:func:`window` readings and turns them into one result with :func:`summary`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from .procstat import cpu_seconds, machine_busy_seconds

__all__ = [
    "CONNECT_CONCURRENCY",
    "LINE_SIZE",
    "PingPong",
    "Run",
    "Window",
    "close_all",
    "connect_all",
    "percentile",
    "summary",
    "until",
    "window",
]

LINE_SIZE = 64
CONNECT_CONCURRENCY = 100


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0.0 when empty)."""
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return float(ordered[index])


class Run:
    """State shared by every connection of one run."""

    def __init__(self, max_requests: int) -> None:
        self.running = False
        self.measuring = False
        self.count = 0
        self.max_requests = max_requests
        self.latencies: list[int] = []
        self.errors = 0
        self.lost = 0
        self.open = 0
        self.all_closed = asyncio.Event()
        self.reached = asyncio.Event()  # count reached max_requests

    def counted(self) -> None:
        """One more reply in the measured window."""
        self.count += 1
        if self.count >= self.max_requests:
            self.running = False
            self.reached.set()


class PingPong(asyncio.Protocol):
    """Send a line, wait for exactly its length back, send again."""

    __slots__ = ("_line", "_pending", "_reply", "_run", "_sent", "served", "transport")

    def __init__(self, run: Run, line: bytes) -> None:
        self._run = run
        self._line = line
        self._pending = 0
        self._sent = 0
        self._reply: bytes | None = b""  # None once the first reply was checked
        self.served = 0
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._run.open += 1

    def send(self) -> None:
        self._pending = len(self._line)
        self._sent = time.perf_counter_ns()
        self.transport.write(self._line)

    def data_received(self, data: bytes) -> None:
        if self._reply is not None:  # the first reply is checked, later ones only counted
            self._reply += data
        self._pending -= len(data)
        if self._pending > 0:
            return
        now = time.perf_counter_ns()
        run = self._run
        if self._pending < 0 or (self._reply is not None and self._reply != self._line.upper()):
            run.errors += 1
            self.transport.close()
            return
        self._reply = None
        if run.measuring:
            self.served += 1
            run.latencies.append(now - self._sent)
            run.counted()
        if run.running:
            self._pending = len(self._line)
            self._sent = now
            self.transport.write(self._line)

    def connection_lost(self, exc: Exception | None) -> None:
        run = self._run
        run.open -= 1
        if run.running:
            run.lost += 1
        if run.open <= 0:
            run.all_closed.set()


async def connect_all(
    host: str, port: int, n: int, make: Callable[[], PingPong], timeout: float
) -> tuple[list[PingPong], int]:
    """Open ``n`` connections, at most CONNECT_CONCURRENCY at a time, within ``timeout``."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    protocols: list[PingPong] = []
    failed = 0

    async def one() -> None:
        nonlocal failed
        async with gate:
            try:
                _, protocol = await loop.create_connection(make, host, port)
                protocols.append(protocol)
            except OSError:
                failed += 1

    try:
        async with asyncio.timeout(timeout), asyncio.TaskGroup() as group:
            for _ in range(n):
                group.create_task(one())
    except TimeoutError:
        failed = n - len(protocols)
    return protocols, failed


async def until(event: asyncio.Event, seconds: float) -> None:
    """Wait for ``event``, at most ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        pass


async def close_all(run: Run, protocols: Sequence[PingPong], timeout: float = 5.0) -> None:
    """Stop the run, close every connection and wait (at most ``timeout``) until all are."""
    run.running = False
    for protocol in protocols:
        if protocol.transport is not None:
            protocol.transport.close()
    if run.open > 0:
        await until(run.all_closed, timeout)


Window = tuple[float, float, float, float]
"""(wall clock, generator CPU, server CPU, whole machine busy), in seconds."""


def window(server_pid: int | None) -> Window:
    """A :data:`Window` reading now."""
    server = cpu_seconds(server_pid) if server_pid else 0.0
    return time.perf_counter(), time.process_time(), server, machine_busy_seconds()


def summary(latencies: list[int], count: int, start: Window, end: Window) -> dict[str, Any]:
    """One phase's numbers from its latencies (ns), its reply count and its two readings."""
    ordered = sorted(latencies)
    seconds = end[0] - start[0]
    gen_cpu, server_cpu, machine = end[1] - start[1], end[2] - start[2], end[3] - start[3]
    other = max(0.0, machine - gen_cpu - server_cpu)
    return {
        "requests": count,
        "seconds": round(seconds, 4),
        "rps": count / seconds if seconds > 0 else 0.0,
        "p50_us": percentile(ordered, 0.50) / 1000,
        "p90_us": percentile(ordered, 0.90) / 1000,
        "p99_us": percentile(ordered, 0.99) / 1000,
        "max_us": (ordered[-1] / 1000) if ordered else 0.0,
        "gen_cpu_pct": 100 * gen_cpu / seconds if seconds > 0 else 0.0,
        "server_cpu_s": server_cpu,
        "server_cpu_pct": 100 * server_cpu / seconds if seconds > 0 else 0.0,
        "server_us_per_req": 1e6 * server_cpu / count if count else 0.0,
        "other_cpu_pct": 100 * other / seconds if seconds > 0 else 0.0,
    }
