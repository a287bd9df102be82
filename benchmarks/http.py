"""HTTP rows: the ``web`` demo's static files against aiohttp, http.server and nginx.

    python -m benchmarks.http                    # 3 interleaved runs of every row: ~2 min
    python -m benchmarks.http --quick            # 1 run of 1 s per point: about 20 s
    python -m benchmarks.http --tree before=DIR  # also the web demo from another tree

Every server runs in its own process, pinned to one core, and serves the same
directory on 127.0.0.1: a 1 KiB file and a 20 MiB one.

* ``web demo``: ``python -m asyncnet.demos.web DIR --port 0``, as users run it
  (uvloop when installed);
* ``aiohttp web.static``: aiohttp's own static route on the same loop;
* ``http.server``: ``python -m http.server`` (threaded, HTTP/1.0: a connection per
  request, as users run it);
* ``nginx``: Debian's nginx (one worker, ``sendfile on``) when installed; nginx
  cannot listen on port 0, so it inherits a socket bound here, the way nginx hands
  sockets to a new binary (the ``NGINX`` environment variable).

The load comes from Debian's ``wrk`` pinned to the other core (keep-alive, one
thread); without it from a Python keep-alive generator (``python -m
benchmarks.http load``), and the report says so: that generator, not the servers,
is then the limit for the fast rows.  Small files: 50 connections for
``--duration`` seconds (at least 2,000 requests).  The 20 MiB file: 4
connections, throughput in MB/s.  Each point is the median of the runs.  The
targets, as ratios within one run: small files >= 0.9x aiohttp and >= 3x
http.server; the 20 MiB file >= 0.7x nginx.

Writes a Markdown table on stdout and, with ``--json`` / ``--markdown``, the raw
numbers and the table to files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .nginx import NGINX, spawn_nginx
from .paths import PACKAGE_PARENT, python_path
from .procstat import cpu_seconds, usable_cores

__all__ = ["SMALL_SIZE", "BIG_SIZE", "TARGETS", "main", "parse_wrk", "python_load", "stop_server"]

SMALL_SIZE = 1024
BIG_SIZE = 20 * 1024 * 1024
SMALL_CONNECTIONS = 50
BIG_CONNECTIONS = 4
MIN_SMALL_REQUESTS = 2000

TARGETS: list[tuple[str, str, str, float]] = [
    ("small", "web demo", "aiohttp web.static", 0.9),
    ("small", "web demo", "http.server", 3.0),
    ("big", "web demo", "nginx", 0.7),
]
"""(workload, row, reference row, minimum ratio of row to reference)."""

WRK = shutil.which("wrk")
_PORT = re.compile(rb"127\.0\.0\.1(?::| port )(\d+)")


class HTTPBenchError(RuntimeError):
    """A server or the load generator failed; the message says which and why."""


# -- servers ---------------------------------------------------------------------------


@dataclass
class Server:
    """One server process, pinned, announcing its port on stdout (or given one)."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    stop_signal: int = signal.SIGINT
    scratch: Path | None = None

    def stop(self) -> None:
        """Stop this server (its own signal, then SIGKILL to its process group)."""
        stop_server(self.proc, self.stop_signal)


def stop_server(proc: subprocess.Popen[bytes], stop_signal: int) -> None:
    """Stop a server started in its own process group: ``stop_signal``, then SIGKILL
    to the whole group after 10 s; close its stdout."""
    if proc.poll() is None:
        proc.send_signal(stop_signal)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


def _pinned(cores: set[int] | None) -> Callable[[], None]:
    def preexec() -> None:
        if cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cores)

    return preexec


def _announced_port(proc: subprocess.Popen[bytes], name: str, timeout: float = 30.0) -> int:
    """The 127.0.0.1 port in the first lines ``proc`` writes to stdout."""
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            if (match := _PORT.search(seen)) is not None:
                return int(match[1])
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise HTTPBenchError(f"{name} did not announce its port in {timeout:.0f} s")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise HTTPBenchError(f"{name} exited before listening: {seen[-500:]!r}")
            seen += chunk


def start_python_server(
    name: str,
    argv: Sequence[str],
    cores: set[int] | None,
    env: dict[str, str],
    cwd: Path = PACKAGE_PARENT,
) -> Server:
    """Start ``python argv`` in ``cwd`` and wait for the port it announces.

    ``python -m`` puts ``cwd`` first on ``sys.path``, before ``PYTHONPATH``: a
    server from another tree must run in that tree.
    """
    proc = subprocess.Popen(
        [sys.executable, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        preexec_fn=_pinned(cores),  # no threads here yet
        start_new_session=True,
    )
    try:
        port = _announced_port(proc, name)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return Server(name, proc, port)


def start_nginx(root: Path, cores: set[int] | None) -> Server:
    """nginx on a 127.0.0.1 socket bound here (no free-port guessing)."""
    scratch = Path(tempfile.mkdtemp(prefix="asyncnet-bench-nginx-"))
    proc, port, _ = spawn_nginx(root, scratch, preexec_fn=_pinned(cores))
    return Server("nginx", proc, port, stop_signal=signal.SIGQUIT, scratch=scratch)


async def _serve_aiohttp(root: str) -> None:
    """aiohttp's ``web.static`` alone, as its documentation shows it."""
    from aiohttp import web

    app = web.Application()
    app.router.add_static("/", root)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"aiohttp web.static on http://127.0.0.1:{port}/", flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    try:
        await stopped.wait()
    finally:
        await runner.cleanup()


# -- load ------------------------------------------------------------------------------


def parse_wrk(text: str) -> dict[str, float]:
    """Requests, seconds, req/s, bytes/s and errors from wrk's report."""
    found = re.search(r"(\d+) requests in ([\d.]+)(m?s|m)\b", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if found is None or rps is None:
        raise HTTPBenchError(f"cannot read wrk's report: {text[-500:]!r}")
    seconds = float(found[2]) * {"s": 1.0, "ms": 0.001, "m": 60.0}[found[3]]
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)([KMGT]?B)", text)
    scale = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
    bytes_per_s = float(transfer[1]) * scale[transfer[2]] if transfer else 0.0
    errors = 0
    if (bad := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)) is not None:
        errors += int(bad[1])
    if sock := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    ):
        errors += sum(int(sock[i]) for i in range(1, 5))
    return {
        "requests": float(found[1]),
        "seconds": seconds,
        "rps": float(rps[1]),
        "bytes_per_s": bytes_per_s,
        "errors": float(errors),
    }


async def python_load(
    port: int, path: str, connections: int, duration: float, size: int
) -> dict[str, float]:
    """Keep-alive GETs of ``path`` over ``connections`` connections for ``duration`` s.

    Reconnects when the server closes after a response (HTTP/1.0, ``Connection:
    close``); a response whose body is not ``size`` bytes, or not a 200, is an error.
    """
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    count = errors = received = 0
    deadline = time.monotonic() + duration

    async def one() -> None:
        nonlocal count, errors, received
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while time.monotonic() < deadline:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                assert reader is not None
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = head.split(b" ", 2)[1]
                lower = head.lower()
                found = re.search(rb"content-length:\s*(\d+)", lower)
                if found is None:
                    raise ConnectionError("a response without Content-Length")
                length = int(found[1])
                remaining = length
                while remaining:
                    chunk = await reader.read(min(remaining, 1 << 20))
                    if not chunk:
                        raise ConnectionError("short body")
                    remaining -= len(chunk)
                received += length
                if status != b"200" or length != size:
                    errors += 1
                count += 1
                if head.startswith(b"HTTP/1.0") or b"connection: close" in lower:
                    writer.close()
                    writer = reader = None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            errors += 1
        finally:
            if writer is not None:
                writer.close()

    start = time.monotonic()
    async with asyncio.timeout(duration + 30):
        await asyncio.gather(*(one() for _ in range(connections)))
    seconds = time.monotonic() - start
    return {
        "requests": float(count),
        "seconds": seconds,
        "rps": count / seconds,
        "bytes_per_s": received / seconds,
        "errors": float(errors),
    }


def run_load(
    port: int,
    path: str,
    connections: int,
    duration: float,
    size: int,
    cores: set[int] | None,
    server_pid: int,
) -> dict[str, float]:
    """One measurement: wrk (or the Python generator) pinned to ``cores``."""
    if WRK is not None:
        # wrk takes whole seconds only.
        seconds = max(1, round(duration))
        argv = [WRK, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
        argv.append(f"http://127.0.0.1:{port}{path}")
    else:
        argv = [sys.executable, "-m", "benchmarks.http", "load", f"--port={port}"]
        argv += [f"--path={path}", f"--connections={connections}"]
        argv += [f"--duration={duration}", f"--size={size}"]
    cpu_before = cpu_seconds(server_pid)
    done = subprocess.run(
        argv,
        capture_output=True,
        cwd=PACKAGE_PARENT,
        env={**os.environ, "PYTHONPATH": python_path()},
        preexec_fn=_pinned(cores),
        timeout=duration + 60,
        check=False,
    )
    server_cpu = cpu_seconds(server_pid) - cpu_before
    out = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0:
        err = (done.stderr or done.stdout).decode("utf-8", "replace").strip()[-500:]
        raise HTTPBenchError(f"load generator {argv[0]} failed ({done.returncode}): {err}")
    result = parse_wrk(out) if WRK is not None else json.loads(out.strip().splitlines()[-1])
    result["server_cpu_s"] = server_cpu
    result["server_us_per_req"] = 1e6 * server_cpu / result["requests"] if result["requests"] else 0
    return result


# -- the run ---------------------------------------------------------------------------


@dataclass
class Row:
    """One server's runs of one workload."""

    server: str
    workload: str
    runs: list[dict[str, float]] = field(default_factory=list)

    def median(self, key: str) -> float:
        """The median of ``key`` over the runs."""
        return statistics.median(r[key] for r in self.runs) if self.runs else 0.0

    def spread(self, key: str) -> float:
        """(max - min) / median of ``key``, as a fraction."""
        values = [r[key] for r in self.runs]
        middle = self.median(key)
        return (max(values) - min(values)) / middle if len(values) > 1 and middle else 0.0


def make_site(into: Path) -> Path:
    """The served directory: small.bin (1 KiB) and big.bin (20 MiB), random bytes."""
    root = into / "www"
    root.mkdir()
    (root / "small.bin").write_bytes(os.urandom(SMALL_SIZE))
    with open(root / "big.bin", "wb") as f:
        for _ in range(BIG_SIZE // (1 << 20)):
            f.write(os.urandom(1 << 20))
    return root


def start_servers(root: Path, trees: dict[str, Path], cores: set[int] | None) -> list[Server]:
    """Every server of the run, each announced and listening."""
    base_env = {**os.environ, "PYTHONPATH": python_path()}
    servers: list[Server] = []
    try:
        web = ["-m", "asyncnet.demos.web", str(root), "--port", "0"]
        servers.append(start_python_server("web demo", web, cores, base_env))
        for tag, tree in trees.items():
            env = {**os.environ, "PYTHONPATH": python_path(tree)}
            servers.append(start_python_server(f"web demo, {tag}", web, cores, env, tree))
        aiohttp = ["-m", "benchmarks.http", "serve-aiohttp", str(root)]
        servers.append(start_python_server("aiohttp web.static", aiohttp, cores, base_env))
        stdlib = ["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(root)]
        servers.append(start_python_server("http.server", stdlib, cores, base_env))
        if NGINX is not None:
            servers.append(start_nginx(root, cores))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Start the servers, run every workload ``args.repeat`` times interleaved."""
    cores = usable_cores()
    server_cores = {cores[0]} if len(cores) >= 2 else None
    load_cores = {cores[1]} if len(cores) >= 2 else None
    trees = dict(args.tree)
    workloads = [
        ("small", "/small.bin", SMALL_CONNECTIONS, SMALL_SIZE),
        ("big", "/big.bin", BIG_CONNECTIONS, BIG_SIZE),
    ]
    rows: dict[tuple[str, str], Row] = {}
    with tempfile.TemporaryDirectory(prefix="asyncnet-bench-http-") as scratch:
        root = make_site(Path(scratch))
        servers = start_servers(root, trees, server_cores)
        try:
            # One request each before measuring: imports, first file open, caches.
            for server in servers:
                run_load(server.port, "/small.bin", 1, 1, SMALL_SIZE, load_cores, server.proc.pid)
            for repeat in range(args.repeat):
                for workload, path, connections, size in workloads:
                    for server in servers:
                        result = run_load(
                            server.port,
                            path,
                            connections,
                            args.duration,
                            size,
                            load_cores,
                            server.proc.pid,
                        )
                        row = rows.setdefault((server.name, workload), Row(server.name, workload))
                        row.runs.append(result)
                        mb_per_s = result["bytes_per_s"] / 1e6
                        print(
                            f"  [{repeat + 1}/{args.repeat}] {workload:5} {server.name:24} "
                            f"{result['rps']:10,.0f} req/s {mb_per_s:9,.0f} MB/s",
                            file=sys.stderr,
                            flush=True,
                        )
        finally:
            for server in servers:
                server.stop()
                if server.scratch is not None:
                    shutil.rmtree(server.scratch, ignore_errors=True)
    return {
        "generator": "wrk" if WRK is not None else "python (wrk not installed)",
        "nginx": NGINX is not None,
        "repeat": args.repeat,
        "duration": args.duration,
        "usable_cores": cores,
        "rows": [
            {
                "server": row.server,
                "workload": row.workload,
                "rps": row.median("rps"),
                "rps_spread": row.spread("rps"),
                "mb_per_s": row.median("bytes_per_s") / 1e6,
                "requests": row.median("requests"),
                "errors": sum(r["errors"] for r in row.runs),
                "server_us_per_req": row.median("server_us_per_req"),
                "runs": row.runs,
            }
            for row in rows.values()
        ],
    }


def judge(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target: its ratio within this run, and whether it was met."""
    by = {(r["server"], r["workload"]): r for r in result["rows"]}
    verdicts = []
    for workload, row, reference, minimum in TARGETS:
        key = "rps" if workload == "small" else "mb_per_s"
        mine, theirs = by.get((row, workload)), by.get((reference, workload))
        if mine is None or theirs is None or not theirs[key]:
            verdicts.append(
                {"target": f"{workload}: {row} >= {minimum}x {reference}", "ratio": None}
            )
            continue
        ratio = mine[key] / theirs[key]
        verdicts.append(
            {
                "target": f"{workload}: {row} >= {minimum}x {reference}",
                "ratio": ratio,
                "met": ratio >= minimum,
            }
        )
    return verdicts


def markdown(result: dict[str, Any]) -> str:
    """The run as Markdown: one table, then the targets."""
    lines = [
        f"Load generator: {result['generator']}; median of {result['repeat']} interleaved "
        f"runs of {result['duration']} s per point.  Small: {SMALL_SIZE} B file, "
        f"{SMALL_CONNECTIONS} keep-alive connections; big: {BIG_SIZE >> 20} MiB file, "
        f"{BIG_CONNECTIONS} connections.",
        "",
        "| server | small req/s | small server µs/req | 20 MiB MB/s | 20 MiB server ms/file "
        "| errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    by = {(r["server"], r["workload"]): r for r in result["rows"]}
    for name in dict.fromkeys(r["server"] for r in result["rows"]):
        small, big = by.get((name, "small")), by.get((name, "big"))
        lines.append(
            f"| {name} | "
            + (f"{small['rps']:,.0f} ±{100 * small['rps_spread']:.0f}%" if small else "-")
            + " | "
            + (f"{small['server_us_per_req']:.0f}" if small else "-")
            + " | "
            + (f"{big['mb_per_s']:,.0f}" if big else "-")
            + " | "
            + (f"{big['server_us_per_req'] / 1000:.1f}" if big else "-")
            + " | "
            + f"{int((small or {}).get('errors', 0) + (big or {}).get('errors', 0))} |"
        )
    lines.append("")
    for verdict in result.get("targets", []):
        if verdict["ratio"] is None:
            lines.append(f"- {verdict['target']}: not measured")
        else:
            mark = "met" if verdict["met"] else "MISSED"
            lines.append(f"- {verdict['target']}: {verdict['ratio']:.2f}x, {mark}")
    return "\n".join(lines) + "\n"


def _tree(value: str) -> tuple[str, Path]:
    tag, equals, directory = value.partition("=")
    path = Path(directory)
    if not equals or not tag or not (path / "asyncnet" / "__init__.py").is_file():
        raise argparse.ArgumentTypeError(
            f"--tree needs TAG=DIR with DIR holding an asyncnet/ package, not {value!r}"
        )
    return tag, path.resolve()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the HTTP rows (or, internally, one aiohttp server or one Python load run)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["serve-aiohttp"] and len(args_list) == 2:
        from asyncnet import run

        run(_serve_aiohttp(args_list[1]))
        return 0
    if args_list[:1] == ["load"]:
        load = argparse.ArgumentParser(prog="python -m benchmarks.http load")
        load.add_argument("--port", type=int, required=True)
        load.add_argument("--path", required=True)
        load.add_argument("--connections", type=int, default=SMALL_CONNECTIONS)
        load.add_argument("--duration", type=float, default=3.0)
        load.add_argument("--size", type=int, required=True)
        opts = load.parse_args(args_list[1:])
        from asyncnet import run

        numbers = run(python_load(opts.port, opts.path, opts.connections, opts.duration, opts.size))
        print(json.dumps(numbers))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.http",
        description="Static files: the web demo against aiohttp, http.server and nginx.",
    )
    parser.add_argument("--quick", action="store_true", help="1 run of 1 s per point")
    parser.add_argument("--repeat", type=int, default=3, help="runs per point (median)")
    parser.add_argument(
        "--duration", type=float, default=3.0, help="seconds per run (whole seconds with wrk)"
    )
    parser.add_argument(
        "--tree",
        type=_tree,
        action="append",
        default=[],
        metavar="TAG=DIR",
        help="also run the web demo from another source tree (before/after)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the raw numbers")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write the table")
    args = parser.parse_args(args_list)
    if args.quick:
        args.repeat, args.duration = 1, 1.0
    if args.repeat < 1 or args.duration <= 0:
        parser.error("--repeat must be >= 1 and --duration > 0")
    if WRK is None:
        print("wrk not installed: the Python generator drives the rows", file=sys.stderr)
    try:
        result = measure(args)
    except HTTPBenchError as exc:
        print(f"benchmarks.http: {exc}", file=sys.stderr)
        return 1
    result["targets"] = judge(result)
    text = markdown(result)
    print(text, end="")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
