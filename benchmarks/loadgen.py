"""The load generator: ping-pong over many TCP connections, UDP with N in flight,
idle connections for the memory measurement, and the fairness point.  Runs in its own
process.

    python -m benchmarks.loadgen tcp --port P --connections 100 --duration 3
    python -m benchmarks.loadgen udp --port Q --inflight 10 --duration 3
    python -m benchmarks.loadgen hold --port P --connections 1000 --server-pid PID
    python -m benchmarks.loadgen fairness --port P --depth 2000 --duration 3
    python -m benchmarks.loadgen pipelined --port P --connections 10 --inflight 32 --size 1024

Each prints one JSON object on stdout.  It is built to cost as little CPU per
request as Python allows: uvloop when installed, plain ``asyncio.Protocol``
callbacks, no task per request, replies recognised by their length (see
:mod:`.pingpong`).  With ``--server-pid`` it also reads the server's CPU time over
the measured window (see :mod:`.procstat`), and it always reports its own CPU use:
near 100 % means the generator, not the server, was the limit.  Every phase is
bounded in time and in count.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from asyncnet import run as run_loop

from .fairness import flood_and_probe
from .pingpong import (
    LINE_SIZE,
    PingPong,
    Run,
    close_all,
    connect_all,
    summary,
    until,
    window,
)
from .procstat import raise_nofile_limit, tree_memory_kib

__all__ = ["hold_idle", "main", "tcp_pingpong", "tcp_pipelined", "udp_pingpong"]

PIPELINED_SIZE = 1024
"""Bytes per line of the pipelined phase, its delimiter included."""


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
    run = Run(max_requests)
    line = b"x" * (size - 1) + b"\n"
    protocols, failed = await connect_all(
        host, port, connections, lambda: PingPong(run, line), connect_timeout
    )
    try:
        run.running = True
        for protocol in protocols:
            protocol.send()
        await asyncio.sleep(warmup)
        start = window(server_pid)
        run.measuring = True
        await until(run.reached, duration)  # max_requests may end the window early
        run.measuring = False
        end = window(server_pid)
    finally:
        await close_all(run, protocols)
    result = summary(run.latencies, run.count, start, end)
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


class _Pipeliner(asyncio.Protocol):
    """Keeps ``inflight`` lines outstanding: each reply line that comes back is replaced
    by a new line at once, all the lines one read completes sent in one write.

    Replies are counted by length (the upper service answers a line with a line of the
    same size); the first ``inflight`` replies are checked byte for byte.
    """

    def __init__(self, run: Run, line: bytes, inflight: int) -> None:
        self._run = run
        self._line = line
        self._size = len(line)
        self._inflight = inflight
        self._partial = 0  # bytes of a reply line received so far
        self._check: bytes | None = b""  # the first replies, until checked
        self._sent: deque[int] = deque()  # send time of each outstanding line
        self.served = 0
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._run.open += 1

    def start(self) -> None:
        self._send(self._inflight, time.perf_counter_ns())

    def _send(self, lines: int, now: int) -> None:
        self._sent.extend(itertools.repeat(now, lines))
        self.transport.write(self._line * lines)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        run = self._run
        if self._check is not None:
            self._check += data
            expected = self._line.upper() * (len(self._check) // self._size)
            if not self._check.startswith(expected):
                run.errors += 1
                self.transport.close()
                return
            if len(self._check) >= self._size * self._inflight:
                self._check = None
        got = self._partial + len(data)
        done, self._partial = divmod(got, self._size)
        if not done:
            return
        sent = self._sent
        if run.measuring:
            latencies = run.latencies
            for _ in range(done):
                latencies.append(now - sent.popleft())
            self.served += done
            run.count += done
            if run.count >= run.max_requests:
                run.running = False
                run.reached.set()
        else:
            for _ in range(done):
                sent.popleft()
        if run.running:
            self._send(done, now)

    def connection_lost(self, exc: Exception | None) -> None:
        run = self._run
        run.open -= 1
        if run.running:
            run.lost += 1
        if run.open <= 0:
            run.all_closed.set()


async def tcp_pipelined(
    host: str,
    port: int,
    connections: int,
    inflight: int,
    duration: float,
    warmup: float,
    server_pid: int | None = None,
    size: int = PIPELINED_SIZE,
    max_requests: int = 50_000_000,
    connect_timeout: float = 30.0,
) -> dict[str, Any]:
    """``connections`` clients each keep ``inflight`` ``size``-byte lines outstanding;
    ``rps`` counts reply lines."""
    run = Run(max_requests)
    line = b"x" * (size - 1) + b"\n"
    # connect_all() is typed for PingPong; any Protocol with a transport attribute does.
    factory: Any = lambda: _Pipeliner(run, line, inflight)  # noqa: E731
    connected, failed = await connect_all(host, port, connections, factory, connect_timeout)
    protocols: list[Any] = list(connected)
    try:
        run.running = True
        for protocol in protocols:
            protocol.start()
        await asyncio.sleep(warmup)
        start = window(server_pid)
        run.measuring = True
        await until(run.reached, duration)
        run.measuring = False
        end = window(server_pid)
    finally:
        await close_all(run, protocols)
    result = summary(run.latencies, run.count, start, end)
    result.update(
        mode="pipelined",
        connections=connections,
        inflight=inflight,
        line_bytes=size,
        mib_per_s=result["rps"] * size / (1 << 20),
        connected=len(protocols),
        connect_failed=failed,
        served=sum(1 for p in protocols if p.served),
        errors=run.errors,
        lost=run.lost,
    )
    return result


class _Datagrams(asyncio.DatagramProtocol):
    """Keeps ``inflight`` numbered datagrams outstanding; lost ones are replaced."""

    def __init__(self, run: Run, inflight: int, size: int) -> None:
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
    run = Run(max_requests)
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
        start = window(server_pid)
        run.measuring = True
        await until(run.reached, duration)
        run.measuring = False
        end = window(server_pid)
    finally:
        run.running = False
        if expiry is not None:
            expiry.cancel()
        transport.close()
    result = summary(run.latencies, run.count, start, end)
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
    run = Run(max_requests=connections + warm)
    line = b"x" * (LINE_SIZE - 1) + b"\n"

    async def open_and_ping(n: int) -> tuple[list[Any], int]:
        protocols, failed = await connect_all(
            host, port, n, lambda: PingPong(run, line), connect_timeout
        )
        run.max_requests = run.count + len(protocols)
        run.reached.clear()
        for protocol in protocols:
            protocol.send()
        if protocols:
            await until(run.reached, connect_timeout)
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
        await close_all(run, [*warm_protocols, *protocols], timeout=10.0)
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
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen")
    parser.add_argument("mode", choices=["tcp", "udp", "hold", "fairness", "pipelined"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument(
        "--inflight", type=int, default=10, help="udp: datagrams, pipelined: lines per connection"
    )
    parser.add_argument(
        "--size", type=int, default=PIPELINED_SIZE, help="pipelined: bytes per line"
    )
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--max-requests", type=int, default=50_000_000)
    parser.add_argument("--depth", type=int, default=2000, help="fairness: flood lines in flight")
    parser.add_argument("--no-uvloop", action="store_true", help="use the stdlib loop")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("the load generator only talks to loopback")
    if args.size < 2:
        parser.error("--size must be at least 2 (a byte and the newline)")
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
        elif args.mode == "pipelined":
            result = await tcp_pipelined(
                args.host,
                args.port,
                args.connections,
                args.inflight,
                args.duration,
                args.warmup,
                args.server_pid,
                size=args.size,
                max_requests=args.max_requests,
            )
        elif args.mode == "fairness":
            result = await flood_and_probe(
                args.host, args.port, args.duration, args.warmup, args.server_pid, args.depth
            )
        else:
            result = await hold_idle(args.host, args.port, args.connections, args.server_pid)
        result["generator_loop"] = _loop_name()
        result["generator_nofile"] = nofile[0]
        return result

    use_uvloop: bool | None = False
    if not args.no_uvloop:
        try:
            import uvloop  # noqa: F401

            use_uvloop = True
        except ImportError:
            use_uvloop = None
    result = run_loop(main_async(), use_uvloop=use_uvloop)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
