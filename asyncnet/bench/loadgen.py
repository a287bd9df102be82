"""The load generator: ping-pong over many TCP connections, UDP with N in flight,
and idle connections for the memory measurement.  Runs in its own process.

    python -m asyncnet.bench.loadgen tcp --port P --connections 100 --duration 3
    python -m asyncnet.bench.loadgen udp --port Q --inflight 10 --duration 3
    python -m asyncnet.bench.loadgen hold --port P --connections 1000 --server-pid PID

Each prints one JSON object on stdout.  It is built to cost as little CPU per
request as Python allows: uvloop when installed, plain ``asyncio.Protocol``
callbacks, no task per request, replies recognised by their length (the upper
service answers a 64-byte line with 64 bytes).  With ``--server-pid`` it also reads
the server's CPU time over the measured window (see :mod:`.procstat`), and it always
reports its own CPU use: near 100 % means the generator, not the server, was the
limit.  Every phase is bounded in time and in count.

(Longer than asyncnet's ~400-line guide: the TCP, UDP and idle-memory generators share
the pacing, the latency histogram and the result format, and run as one pinned process.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

from .procstat import cpu_seconds, machine_busy_seconds, raise_nofile_limit, tree_memory_kib

__all__ = ["main", "percentile"]

LINE_SIZE = 64
CONNECT_CONCURRENCY = 100


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0.0 when empty)."""
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return float(ordered[index])


class _Run:
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


class _PingPong(asyncio.Protocol):
    """Send a line, wait for exactly its length back, send again."""

    __slots__ = ("_line", "_pending", "_reply", "_run", "_sent", "served", "transport")

    def __init__(self, run: _Run, line: bytes) -> None:
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


async def _connect_all(
    host: str, port: int, n: int, make: Any, timeout: float
) -> tuple[list[Any], int]:
    """Open ``n`` connections, at most CONNECT_CONCURRENCY at a time, within ``timeout``."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    protocols: list[Any] = []
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


async def _until(event: asyncio.Event, seconds: float) -> None:
    """Wait for ``event``, at most ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        pass


async def _close_all(run: _Run, protocols: Sequence[Any], timeout: float = 5.0) -> None:
    run.running = False
    for protocol in protocols:
        if protocol.transport is not None:
            protocol.transport.close()
    if run.open > 0:
        try:
            async with asyncio.timeout(timeout):
                await run.all_closed.wait()
        except TimeoutError:
            pass


_Window = tuple[float, float, float, float]


def _window(server_pid: int | None) -> _Window:
    """(wall clock, generator CPU, server CPU, whole machine busy) right now."""
    server = cpu_seconds(server_pid) if server_pid else 0.0
    return time.perf_counter(), time.process_time(), server, machine_busy_seconds()


def _summary(latencies: list[int], count: int, start: _Window, end: _Window) -> dict[str, Any]:
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


async def tcp_pingpong(
    host: str,
    port: int,
    connections: int,
    duration: float,
    warmup: float,
    server_pid: int | None = None,
    size: int = LINE_SIZE,
    max_requests: int = 50_000_000,
    connect_timeout: float = 30.0,
) -> dict[str, Any]:
    """``connections`` clients each send a ``size``-byte line and wait for the reply."""
    run = _Run(max_requests)
    line = b"x" * (size - 1) + b"\n"
    protocols, failed = await _connect_all(
        host, port, connections, lambda: _PingPong(run, line), connect_timeout
    )
    try:
        run.running = True
        for protocol in protocols:
            protocol.send()
        await asyncio.sleep(warmup)
        start = _window(server_pid)
        run.measuring = True
        await _until(run.reached, duration)  # max_requests may end the window early
        run.measuring = False
        end = _window(server_pid)
    finally:
        await _close_all(run, protocols)
    result = _summary(run.latencies, run.count, start, end)
    result.update(
        mode="tcp",
        connections=connections,
        connected=len(protocols),
        connect_failed=failed,
        served=sum(1 for p in protocols if p.served),
        errors=run.errors,
        lost=run.lost,
    )
    return result


class _Datagrams(asyncio.DatagramProtocol):
    """Keeps ``inflight`` numbered datagrams outstanding; lost ones are replaced."""

    def __init__(self, run: _Run, inflight: int, size: int) -> None:
        self._run = run
        self._inflight = inflight
        self._pad = b"x" * (size - 12)
        self._seq = 0
        self.outstanding: dict[int, int] = {}
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def send(self) -> None:
        self._seq += 1
        self.outstanding[self._seq] = time.perf_counter_ns()
        self.transport.sendto(b"%010d: " % self._seq + self._pad)

    def start(self) -> None:
        for _ in range(self._inflight):
            self.send()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        now = time.perf_counter_ns()
        run = self._run
        try:
            sent = self.outstanding.pop(int(data[:10]))
        except (ValueError, KeyError):
            run.errors += 1  # a garbled reply, or one we already gave up on
            return
        if run.measuring:
            run.latencies.append(now - sent)
            run.counted()
        if run.running:
            self.send()

    def error_received(self, exc: Exception) -> None:
        self._run.errors += 1

    def expire(self, older_than_ns: int) -> None:
        """Give up on datagrams older than the limit and send replacements."""
        limit = time.perf_counter_ns() - older_than_ns
        for seq in [s for s, t in self.outstanding.items() if t < limit]:
            del self.outstanding[seq]
            self._run.lost += 1
            if self._run.running:
                self.send()


async def udp_pingpong(
    host: str,
    port: int,
    inflight: int,
    duration: float,
    warmup: float,
    server_pid: int | None = None,
    size: int = LINE_SIZE,
    max_requests: int = 50_000_000,
) -> dict[str, Any]:
    """Keep ``inflight`` datagrams outstanding against a UDP upper server."""
    loop = asyncio.get_running_loop()
    run = _Run(max_requests)
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Datagrams(run, inflight, size), remote_addr=(host, port)
    )
    expiry: asyncio.TimerHandle | None = None

    def expire() -> None:
        nonlocal expiry
        protocol.expire(200_000_000)  # 200 ms without a reply: lost
        expiry = loop.call_later(0.05, expire)

    try:
        run.running = True
        protocol.start()
        expire()
        await asyncio.sleep(warmup)
        start = _window(server_pid)
        run.measuring = True
        await _until(run.reached, duration)
        run.measuring = False
        end = _window(server_pid)
    finally:
        run.running = False
        if expiry is not None:
            expiry.cancel()
        transport.close()
    result = _summary(run.latencies, run.count, start, end)
    result.update(mode="udp", inflight=inflight, errors=run.errors, lost=run.lost)
    return result


async def hold_idle(
    host: str,
    port: int,
    connections: int,
    server_pid: int,
    settle: float = 0.5,
    warm: int = 10,
    connect_timeout: float = 60.0,
) -> dict[str, Any]:
    """Memory per idle connection: open ``connections`` (one request each), keep them idle."""
    run = _Run(max_requests=connections + warm)
    line = b"x" * (LINE_SIZE - 1) + b"\n"

    async def open_and_ping(n: int) -> tuple[list[Any], int]:
        protocols, failed = await _connect_all(
            host, port, n, lambda: _PingPong(run, line), connect_timeout
        )
        run.max_requests = run.count + len(protocols)
        run.reached.clear()
        for protocol in protocols:
            protocol.send()
        if protocols:
            await _until(run.reached, connect_timeout)
        return protocols, failed

    run.measuring = True  # count the single request of each connection; never re-send
    warm_protocols, _ = await open_and_ping(warm)
    await asyncio.sleep(settle)
    base = tree_memory_kib(server_pid)
    protocols: list[Any] = []
    try:
        before = run.count
        protocols, failed = await open_and_ping(connections)
        answered = run.count - before
        await asyncio.sleep(settle)
        loaded = tree_memory_kib(server_pid)
    finally:
        await _close_all(run, [*warm_protocols, *protocols], timeout=10.0)
    held = len(protocols)
    return {
        "mode": "hold",
        "connections": connections,
        "connected": held,
        "connect_failed": failed,
        "answered": answered,
        "base_kib": base,
        "loaded_kib": loaded,
        "kib_per_conn": (loaded - base) / held if held else 0.0,
    }


def _loop_name() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one load phase and print its result as JSON."""
    parser = argparse.ArgumentParser(prog="python -m asyncnet.bench.loadgen")
    parser.add_argument("mode", choices=["tcp", "udp", "hold", "fairness"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--inflight", type=int, default=10)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--max-requests", type=int, default=50_000_000)
    parser.add_argument("--depth", type=int, default=2000, help="fairness: flood lines in flight")
    parser.add_argument("--no-uvloop", action="store_true", help="use the stdlib loop")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("the load generator only talks to loopback")
    if args.mode == "hold" and not args.server_pid:
        parser.error("hold needs --server-pid")
    nofile = raise_nofile_limit()

    async def main_async() -> dict[str, Any]:
        if args.mode == "tcp":
            result = await tcp_pingpong(
                args.host,
                args.port,
                args.connections,
                args.duration,
                args.warmup,
                args.server_pid,
                max_requests=args.max_requests,
            )
        elif args.mode == "udp":
            result = await udp_pingpong(
                args.host,
                args.port,
                args.inflight,
                args.duration,
                args.warmup,
                args.server_pid,
                max_requests=args.max_requests,
            )
        elif args.mode == "fairness":
            from .fairness import flood_and_probe

            result = await flood_and_probe(
                args.host, args.port, args.duration, args.warmup, args.server_pid, args.depth
            )
        else:
            result = await hold_idle(args.host, args.port, args.connections, args.server_pid)
        result["generator_loop"] = _loop_name()
        result["generator_nofile"] = nofile[0]
        return result

    from ..runner import run

    use_uvloop: bool | None = False
    if not args.no_uvloop:
        try:
            import uvloop  # noqa: F401

            use_uvloop = True
        except ImportError:
            use_uvloop = None
    result = run(main_async(), use_uvloop=use_uvloop)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
