"""The fairness point: a quiet client's latency while another client floods the server.

One *flooder* pipelines 64-byte lines as fast as the server answers them, keeping
``depth`` lines in flight (it reads its replies, but only to keep the pipeline full);
one *quiet* client does ping-pong, one line at a time, and its latency is measured.
A server that handles a whole read of flood lines (thousands) before it looks at
anyone else shows it here as the quiet client's p99; the same point for a bare
``Protocol`` server on the same loop is the reference.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from typing import Any

from .pingpong import LINE_SIZE, PingPong, Run, close_all, connect_all, summary, window

__all__ = ["FAIRNESS_IMPLEMENTATIONS", "flood_and_probe", "summarize_fairness"]

FAIRNESS_IMPLEMENTATIONS = ("bare-asyncio", "asyncnet-asyncio", "bare-uvloop", "asyncnet-uvloop")
"""Measured at the fairness point (when selected): each asyncnet loop next to its bare twin."""


class _Flooder(asyncio.Protocol):
    """Keeps ``depth`` lines in flight: writes more as replies come back."""

    def __init__(self, line: bytes, depth: int) -> None:
        self._chunk = line * 64
        self._window = depth * len(line)
        self._line_size = len(line)
        self.outstanding = 0
        self.answered = 0  # reply bytes
        self.running = True
        self.paused = False
        self.transport: Any = None
        self.closed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.top_up()

    def top_up(self) -> None:
        while self.running and not self.paused and self.outstanding < self._window:
            self.transport.write(self._chunk)
            self.outstanding += len(self._chunk)

    def data_received(self, data: bytes) -> None:
        self.outstanding -= len(data)
        self.answered += len(data)
        self.top_up()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.top_up()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()

    @property
    def lines_answered(self) -> int:
        return self.answered // self._line_size


async def flood_and_probe(
    host: str,
    port: int,
    duration: float,
    warmup: float,
    server_pid: int | None = None,
    depth: int = 2000,
) -> dict[str, Any]:
    """One flooder with ``depth`` lines in flight, one quiet ping-pong client; the quiet
    client's latency percentiles and the flood's rate."""
    loop = asyncio.get_running_loop()
    line = b"x" * (LINE_SIZE - 1) + b"\n"
    _, flooder = await loop.create_connection(lambda: _Flooder(line, depth), host, port)
    run = Run(max_requests=50_000_000)
    quiet, failed = await connect_all(host, port, 1, lambda: PingPong(run, line), 10.0)
    if failed or not quiet:
        flooder.transport.close()
        raise ConnectionError("the quiet client could not connect")
    try:
        run.running = True
        quiet[0].send()
        await asyncio.sleep(warmup)
        flood_before = flooder.lines_answered
        start = window(server_pid)
        run.measuring = True
        await asyncio.sleep(duration)
        run.measuring = False
        end = window(server_pid)
        flood_lines = flooder.lines_answered - flood_before
    finally:
        flooder.running = False
        flooder.transport.close()
        await close_all(run, quiet)
        try:
            async with asyncio.timeout(5):
                await flooder.closed.wait()
        except TimeoutError:
            pass
    result = summary(run.latencies, run.count, start, end)
    seconds = end[0] - start[0]
    result.update(
        mode="fairness",
        depth=depth,
        flood_lines_per_s=flood_lines / seconds if seconds > 0 else 0.0,
        quiet_requests=run.count,
    )
    return result


def summarize_fairness(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the repeats of the quiet client's latency and the flood's rate."""
    keys = ("p50_us", "p99_us", "max_us", "rps", "flood_lines_per_s", "other_cpu_pct")
    medians: dict[str, Any] = {"runs": list(runs)}
    for key in keys:
        medians[key] = statistics.median(float(r[key]) for r in runs) if runs else 0.0
    medians["measured_at"] = time.strftime("%H:%M:%S")
    return medians
