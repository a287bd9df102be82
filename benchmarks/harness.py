"""The benchmark's conductor: start each server in its own process, drive it with the
load generator in another, collect every raw number.

Each implementation serves the upper service over TCP (and UDP where it has one).
The server is pinned to one core and the generator to another (when the machine
has two or more), RLIMIT_NOFILE is raised to the hard limit for both, and each
point is repeated; the reported value is the median, with the spread
(max - min) / median next to it.  Memory per idle connection is measured on a
fresh server per point, so memory freed by earlier load cannot hide the cost.

Every process runs from this checkout: the benchmark's own modules with
``python -m benchmarks.<module>``, the classic threaded demos by file path
(``BenchConfig.demos_dir``), asyncnet from the checkout or from a ``--tree``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .cloadgen import compiler
from .fairness import FAIRNESS_IMPLEMENTATIONS, summarize_fairness
from .paths import CLASSIC_DEMOS, PACKAGE_PARENT, python_path
from .procstat import raise_nofile_limit, usable_cores
from .targets import Target, evaluate_targets

__all__ = ["IMPLEMENTATIONS", "BenchConfig", "Implementation", "run_bench"]

_ADDRESS = re.compile(r"(?:(tcp|udp)://)?127\.0\.0\.1:(\d+)")


@dataclass(frozen=True)
class Implementation:
    """One server to measure: how to start it and what it is."""

    name: str
    label: str
    tcp: tuple[str, ...]
    """Arguments after ``python``: prints its address(es) on the first line."""
    udp: tuple[str, ...] | None = None
    """A separate UDP server process; ``None`` when ``tcp`` serves UDP too (or none)."""
    has_udp: bool = True
    env: tuple[tuple[str, str], ...] = ()
    needs_uvloop: bool = False
    needs_demos: bool = False
    pinned: bool = True
    """False for multi-process servers, which need every core."""
    memory: bool = True
    needs_cc: bool = False
    """Built from C on first use: skipped (with the reason) where no compiler exists."""
    note: str = ""
    tree: str | None = None
    """Run from this source tree instead of the installed asyncnet (A/B of a patch)."""


_SERVERS = ("-m", "benchmarks.servers")
_NO_UVLOOP = (("ASYNCNET_NO_UVLOOP", "1"),)
_DEMO_NOTE = "python -m asyncnet.demos.upper itself: LineHandler + UDP, default timeouts"

IMPLEMENTATIONS: dict[str, Implementation] = {
    impl.name: impl
    for impl in [
        Implementation(
            "threaded",
            "threaded socketserver",
            ("demos/SockServTCP.py", "--threading", "0"),
            udp=("demos/SockServUDP.py", "0"),
            needs_demos=True,
            note="ThreadingTCPServer + readline; UDP: socketserver.UDPServer",
        ),
        Implementation(
            "forking",
            "forking socketserver",
            ("demos/SockServTCP.py", "--forking", "0"),
            has_udp=False,
            needs_demos=True,
            memory=False,
            note="ForkingMixIn.max_children = 40: beyond 40 connections the rest wait",
        ),
        Implementation(
            "streams-asyncio",
            "asyncio streams",
            (*_SERVERS, "streams"),
            note="start_server + readline + drain: the naive rewrite",
        ),
        Implementation(
            "streams-uvloop",
            "asyncio streams, uvloop",
            (*_SERVERS, "streams", "--uvloop"),
            needs_uvloop=True,
            note="the same on uvloop",
        ),
        Implementation(
            "bare-asyncio",
            "asyncio Protocol",
            (*_SERVERS, "protocol"),
            note="data_received + split + one write",
        ),
        Implementation(
            "bare-uvloop",
            "uvloop Protocol",
            (*_SERVERS, "protocol", "--uvloop"),
            needs_uvloop=True,
        ),
        Implementation(
            "asyncnet-asyncio",
            "upper demo, asyncio",
            ("-m", "asyncnet.demos.upper", "--port", "0"),
            env=_NO_UVLOOP,
            note=_DEMO_NOTE,
        ),
        Implementation(
            "asyncnet-uvloop",
            "upper demo, uvloop",
            ("-m", "asyncnet.demos.upper", "--port", "0"),
            needs_uvloop=True,
            note=_DEMO_NOTE,
        ),
        Implementation(
            "asyncnet-stream",
            "upper demo --style stream, uvloop",
            ("-m", "asyncnet.demos.upper", "--port", "0", "--style", "stream"),
            needs_uvloop=True,
            note="the demo as a StreamHandler: readline/write/drain, one task per connection",
        ),
        Implementation(
            "c-epoll",
            "C epoll server",
            ("-m", "benchmarks.cupper", "0"),
            has_udp=False,
            needs_cc=True,
            note="one thread, epoll, the replies to a read in one write: a C floor",
        ),
        Implementation(
            "asyncnet-w2",
            "asyncnet, 2 workers, uvloop",
            (*_SERVERS, "asyncnet-workers", "--workers", "2", "--uvloop"),
            needs_uvloop=True,
            pinned=False,
            note="SO_REUSEPORT workers; not pinned: shares both cores with the generator",
        ),
    ]
}

PIPELINED_IMPLEMENTATIONS = ("bare-uvloop", "asyncnet-uvloop", "c-epoll")
"""Where the pipelined point is measured: the demo against the bare Protocol and the C
server, which both answer all the lines of a read with one write."""

QUICK_IMPLEMENTATIONS = (
    "threaded",
    "bare-asyncio",
    "bare-uvloop",
    "asyncnet-asyncio",
    "asyncnet-uvloop",
    "asyncnet-w2",
    "streams-uvloop",
    "asyncnet-stream",
    "c-epoll",
)


@dataclass
class BenchConfig:
    """What to run and for how long."""

    implementations: Sequence[str] = tuple(IMPLEMENTATIONS)
    points: Sequence[int] = (1, 10, 100, 1000)
    memory_points: Sequence[int] = (1000, 10000)
    repeats: int = 3
    duration: float = 2.5
    warmup: float = 0.5
    udp: bool = True
    udp_inflight: int = 10
    max_requests: int = 50_000_000
    demos_dir: Path = CLASSIC_DEMOS
    """Where the classic threaded servers are (``SockServTCP.py``, ``SockServUDP.py``)."""
    python: str = sys.executable
    trees: Sequence[tuple[str, Path]] = ()
    """(tag, source tree): also run the asyncnet implementations from each tree."""
    fairness: bool = True
    """Measure the fairness point (a quiet client during a flood) where it applies."""
    fairness_depth: int = 2000
    """Flood lines in flight at the fairness point."""
    pipelined: bool = True
    """Measure the pipelined point (lines in flight per connection) where it applies."""
    pipelined_connections: int = 10
    pipelined_inflight: int = 32
    """Lines in flight per connection at the pipelined point."""
    pipelined_line_bytes: int = 1024

    @classmethod
    def quick(cls, **overrides: Any) -> BenchConfig:
        """One repeat, short windows, fewer points: a couple of minutes in all."""
        values: dict[str, Any] = {
            "implementations": QUICK_IMPLEMENTATIONS,
            "points": (1, 100, 1000),
            "memory_points": (1000,),
            "repeats": 1,
            "duration": 1.0,
            "warmup": 0.3,
        }
        values.update(overrides)
        return cls(**values)


class BenchError(RuntimeError):
    """A server or the generator misbehaved in a way that invalidates a measurement."""


def _uvloop_version() -> str | None:
    try:
        import uvloop
    except ImportError:
        return None
    return str(getattr(uvloop, "__version__", "?"))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class _Server:
    """A server subprocess whose first stdout line carries its address."""

    def __init__(
        self, argv: Sequence[str], env: dict[str, str], cores: set[int] | None, cwd: Path
    ) -> None:
        self.argv = list(argv)
        # A file, not a pipe: a server that logs a lot must never block on a full pipe.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 -- closed in stop()

        def preexec() -> None:
            if cores and hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, cores)

        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            preexec_fn=preexec,  # the harness has no threads
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 30.0) -> dict[str, int]:
        """Read the announcement line; return ``{"tcp": port, "udp": port}``."""
        assert self.proc.stdout is not None
        line = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise BenchError(f"{self.argv} did not announce its address in {timeout} s")
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    err = self._stderr_tail()
                    raise BenchError(f"{self.argv} exited before listening: {err}")
                line += chunk
        ports: dict[str, int] = {}
        for scheme, port in _ADDRESS.findall(line.decode("utf-8", "replace")):
            ports.setdefault(scheme or "any", int(port))
        if not ports:
            raise BenchError(f"no 127.0.0.1 address in {line!r} from {self.argv}")
        return ports

    def _stderr_tail(self) -> str:
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "(still running)"
        self._stderr.seek(0)
        return self._stderr.read()[-2000:].decode("utf-8", "replace")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGINT (Ctrl-C: every server shuts down gracefully on it), then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


class Harness:
    """Runs a :class:`BenchConfig`; ``progress`` receives one line per step; the run is
    judged by ``targets`` (``targets.toml`` when None)."""

    def __init__(
        self,
        config: BenchConfig,
        progress: Callable[[str], None] | None = None,
        targets: Sequence[Target] | None = None,
    ) -> None:
        self.config = config
        self.targets = targets
        self.progress = progress or (lambda _msg: None)
        cores = usable_cores()
        if len(cores) >= 2:
            self.server_cores: set[int] | None = {cores[0]}
            self.generator_cores: set[int] | None = {cores[1]}
        else:
            self.server_cores = self.generator_cores = None
        self.nofile = raise_nofile_limit()
        self.env = dict(os.environ)
        self.env.pop("ASYNCNET_NO_UVLOOP", None)
        self.env["PYTHONPATH"] = python_path()
        self.notes: list[str] = []

    # -- processes --------------------------------------------------------------

    def _start(self, impl: Implementation, argv: Sequence[str]) -> tuple[_Server, dict[str, int]]:
        env = dict(self.env)
        env.update(impl.env)
        cwd = PACKAGE_PARENT
        if impl.tree is not None:
            # python -m puts the working directory first on sys.path: the tree's asyncnet
            # wins, and the benchmark's own servers are found after it
            cwd = Path(impl.tree)
            env["PYTHONPATH"] = python_path(impl.tree)
        cores = self.server_cores if impl.pinned else None
        argv = list(argv)
        if impl.needs_demos:
            argv[0] = str(self.config.demos_dir / Path(argv[0]).name)
        server = _Server([self.config.python, *argv], env, cores, cwd)
        try:
            ports = server.wait_ready()
        except BaseException:
            server.stop()
            raise
        return server, ports

    def _generate(self, args: Sequence[str], timeout: float) -> dict[str, Any]:
        cores = self.generator_cores

        def preexec() -> None:
            if cores and hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, cores)

        argv = [self.config.python, "-m", "benchmarks.cloadgen", *args]  # C where it can
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                env=self.env,
                cwd=PACKAGE_PARENT,
                timeout=timeout,
                preexec_fn=preexec,  # the harness has no threads
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"load generator did not finish in {timeout:.0f} s") from exc
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", "replace")[-2000:]
            raise BenchError(f"load generator failed ({done.returncode}): {err}")
        result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
        return result

    # -- phases -----------------------------------------------------------------

    def _tcp_point(self, port: int, pid: int, conns: int) -> dict[str, Any]:
        cfg = self.config
        args = [
            "tcp",
            f"--port={port}",
            f"--connections={conns}",
            f"--duration={cfg.duration}",
            f"--warmup={cfg.warmup}",
            f"--server-pid={pid}",
            f"--max-requests={cfg.max_requests}",
        ]
        return self._generate(args, timeout=cfg.warmup + cfg.duration + 90)

    def _udp_point(self, port: int, pid: int) -> dict[str, Any]:
        cfg = self.config
        args = [
            "udp",
            f"--port={port}",
            f"--inflight={cfg.udp_inflight}",
            f"--duration={cfg.duration}",
            f"--warmup={cfg.warmup}",
            f"--server-pid={pid}",
            f"--max-requests={cfg.max_requests}",
        ]
        return self._generate(args, timeout=cfg.warmup + cfg.duration + 30)

    def _pipelined_point(self, port: int, pid: int) -> dict[str, Any]:
        cfg = self.config
        args = [
            "pipelined",
            f"--port={port}",
            f"--connections={cfg.pipelined_connections}",
            f"--inflight={cfg.pipelined_inflight}",
            f"--size={cfg.pipelined_line_bytes}",
            f"--duration={cfg.duration}",
            f"--warmup={cfg.warmup}",
            f"--server-pid={pid}",
            f"--max-requests={cfg.max_requests}",
        ]
        return self._generate(args, timeout=cfg.warmup + cfg.duration + 60)

    def _memory_limit(self, wanted: int) -> int:
        soft = self.nofile[0]
        fits = soft - 200  # listening sockets, pipes, the interpreter's own files
        if wanted > fits:
            note = (
                f"RLIMIT_NOFILE hard limit is {soft}: memory measured at {fits} "
                f"connections instead of {wanted}"
            )
            if note not in self.notes:
                self.notes.append(note)
            return max(fits, 0)
        return wanted

    def _tcp_progress(self, name: str, conns: int, rep: int, result: dict[str, Any]) -> None:
        self.progress(
            f"{name:17} tcp {conns:5} conns  run {rep + 1}/{self.config.repeats}: "
            f"{result['rps']:9,.0f} req/s  p99 {result['p99_us'] / 1000:7.2f} ms  "
            f"server {result['server_us_per_req']:5.1f} us/req  cpu: server "
            f"{result['server_cpu_pct']:3.0f}% gen {result['gen_cpu_pct']:3.0f}% "
            f"other {result['other_cpu_pct']:3.0f}%"
        )

    def _start_all(self, impls: Sequence[Implementation]) -> dict[str, dict[str, Any]]:
        """Start every server (they idle until their turn); record where each listens.

        If starting one raises (Ctrl-C, say), the servers already started are stopped.
        """
        running: dict[str, dict[str, Any]] = {}
        try:
            for impl in impls:
                self._start_one(impl, running)
        except BaseException:
            for entry in running.values():
                for server in entry["servers"]:
                    server.stop()
            raise
        return running

    def _start_one(self, impl: Implementation, running: dict[str, dict[str, Any]]) -> None:
        try:
            server, ports = self._start(impl, impl.tcp)
        except BenchError as exc:
            self._fail(impl.name, exc)
            return
        entry: dict[str, Any] = {"servers": [server], "tcp": None, "udp": None}
        running[impl.name] = entry
        tcp_port = ports.get("tcp", ports.get("any"))
        if tcp_port is not None:
            try:
                _prime(tcp_port)
            except OSError as exc:  # a server that fails its first session is not measured
                self._fail(impl.name, BenchError(f"the first session failed: {exc}"))
            else:
                entry["tcp"] = (tcp_port, server.pid)
        if self.config.udp and impl.has_udp:
            if impl.udp is None:
                if "udp" in ports:
                    entry["udp"] = (ports["udp"], server.pid)
            else:
                try:
                    udp_server, udp_ports = self._start(impl, impl.udp)
                except BenchError as exc:
                    self._fail(impl.name, exc)
                    return
                entry["servers"].append(udp_server)
                udp_port = udp_ports.get("udp", udp_ports.get("any"))
                if udp_port is not None:
                    entry["udp"] = (udp_port, udp_server.pid)

    def _fail(self, name: str, exc: BaseException) -> None:
        self.notes.append(f"{name}: {exc}")
        self.progress(f"{name}: FAILED {exc}")

    def run_load(self, impls: Sequence[Implementation], out: dict[str, Any]) -> None:
        """TCP and UDP points, interleaved: every repeat visits each server in turn, so a
        change in background load affects all of them rather than one."""
        cfg = self.config
        running = self._start_all(impls)
        tcp_runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
        udp_runs: dict[str, list[dict[str, Any]]] = {}
        pipelined_runs: dict[str, list[dict[str, Any]]] = {}
        broken: set[str] = set()
        try:
            for rep in range(cfg.repeats):
                for conns in cfg.points:
                    for name, entry in running.items():
                        if entry["tcp"] is None or name in broken:
                            continue
                        port, pid = entry["tcp"]
                        try:
                            result = self._tcp_point(port, pid, conns)
                        except (BenchError, ProcessLookupError) as exc:
                            broken.add(name)
                            self._fail(name, exc)
                            continue
                        tcp_runs.setdefault((name, conns), []).append(result)
                        self._tcp_progress(name, conns, rep, result)
                for name, entry in running.items():
                    if entry["udp"] is None or name in broken:
                        continue
                    port, pid = entry["udp"]
                    try:
                        result = self._udp_point(port, pid)
                    except (BenchError, ProcessLookupError) as exc:
                        broken.add(name)
                        self._fail(name, exc)
                        continue
                    udp_runs.setdefault(name, []).append(result)
                    self.progress(
                        f"{name:17} udp {cfg.udp_inflight:3} in flight run "
                        f"{rep + 1}/{cfg.repeats}: {result['rps']:9,.0f} req/s  "
                        f"server {result['server_us_per_req']:5.1f} us/req  "
                        f"other cpu {result['other_cpu_pct']:3.0f}%"
                    )
                if not cfg.pipelined:
                    continue
                for name, entry in running.items():
                    if (
                        entry["tcp"] is None
                        or name in broken
                        or name.partition("@")[0] not in PIPELINED_IMPLEMENTATIONS
                    ):
                        continue
                    port, pid = entry["tcp"]
                    try:
                        result = self._pipelined_point(port, pid)
                    except (BenchError, ProcessLookupError) as exc:
                        broken.add(name)
                        self._fail(name, exc)
                        continue
                    pipelined_runs.setdefault(name, []).append(result)
                    self.progress(
                        f"{name:17} pipelined {cfg.pipelined_connections} conns x "
                        f"{cfg.pipelined_inflight} run {rep + 1}/{cfg.repeats}: "
                        f"{result['rps']:9,.0f} lines/s  "
                        f"server {result['server_us_per_req']:5.2f} us/line  "
                        f"other cpu {result['other_cpu_pct']:3.0f}%"
                    )
        finally:
            for entry in running.values():
                for server in entry["servers"]:
                    server.stop()
        for (name, conns), runs in tcp_runs.items():
            out[name]["tcp"][str(conns)] = summarize(runs)
        for name, runs in udp_runs.items():
            out[name]["udp"] = summarize(runs)
        for name, runs in pipelined_runs.items():
            out[name]["pipelined"] = summarize(runs)

    def run_memory(self, impl: Implementation, out: dict[str, Any]) -> None:
        """Memory per idle connection, on a fresh server for each point."""
        for wanted in self.config.memory_points:
            conns = self._memory_limit(wanted)
            if conns <= 0:
                continue
            try:
                server, ports = self._start(impl, impl.tcp)
            except BenchError as exc:
                self._fail(impl.name, exc)
                return
            try:
                tcp_port = ports.get("tcp", ports.get("any"))
                result = self._generate(
                    [
                        "hold",
                        f"--port={tcp_port}",
                        f"--connections={conns}",
                        f"--server-pid={server.pid}",
                    ],
                    timeout=180,
                )
            except BenchError as exc:
                self._fail(impl.name, exc)
                return
            finally:
                server.stop()
            result["wanted"] = wanted
            out[impl.name]["memory"][str(wanted)] = result
            self.progress(
                f"{impl.name:17} memory {result['connected']:6} idle conns: "
                f"{result['kib_per_conn']:6.2f} KiB/conn"
            )

    def run_fairness(self, impls: Sequence[Implementation], out: dict[str, Any]) -> None:
        """The quiet client's latency while one client floods (see :mod:`.fairness`)."""
        cfg = self.config
        for impl in impls:
            if impl.name.partition("@")[0] not in FAIRNESS_IMPLEMENTATIONS:
                continue
            runs = []
            for rep in range(cfg.repeats):
                try:
                    server, ports = self._start(impl, impl.tcp)
                except BenchError as exc:
                    self._fail(impl.name, exc)
                    break
                try:
                    port = ports.get("tcp", ports.get("any"))
                    result = self._generate(
                        [
                            "fairness",
                            f"--port={port}",
                            f"--duration={cfg.duration}",
                            f"--warmup={cfg.warmup}",
                            f"--server-pid={server.pid}",
                            f"--depth={cfg.fairness_depth}",
                        ],
                        timeout=cfg.warmup + cfg.duration + 60,
                    )
                except BenchError as exc:
                    self._fail(impl.name, exc)
                    break
                finally:
                    server.stop()
                runs.append(result)
                self.progress(
                    f"{impl.name:17} fairness run {rep + 1}/{cfg.repeats}: quiet client p50 "
                    f"{result['p50_us'] / 1000:.2f} ms p99 {result['p99_us'] / 1000:.2f} ms "
                    f"during a flood of {result['flood_lines_per_s']:,.0f} lines/s"
                )
            if runs:
                out[impl.name]["fairness"] = summarize_fairness(runs)

    def meta(self) -> dict[str, Any]:
        """When, where and how the run was made."""
        cfg = self.config
        return {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "nproc": os.cpu_count(),
            "usable_cores": usable_cores(),
            "cpu_model": _cpu_model(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "uvloop": _uvloop_version(),
            "server_cores": sorted(self.server_cores or []),
            "generator_cores": sorted(self.generator_cores or []),
            "rlimit_nofile": list(self.nofile),
            "load_average": list(os.getloadavg()),
            "config": {
                "implementations": list(cfg.implementations),
                "points": list(cfg.points),
                "memory_points": list(cfg.memory_points),
                "repeats": cfg.repeats,
                "duration_s": cfg.duration,
                "warmup_s": cfg.warmup,
                "udp_inflight": cfg.udp_inflight,
                "fairness_depth": cfg.fairness_depth if cfg.fairness else None,
                "pipelined": {
                    "connections": cfg.pipelined_connections,
                    "inflight": cfg.pipelined_inflight,
                    "line_bytes": cfg.pipelined_line_bytes,
                }
                if cfg.pipelined
                else None,
                "line_bytes": 64,
            },
        }

    def run(self) -> dict[str, Any]:
        """Measure every selected implementation; return the raw and summarized results."""
        results: dict[str, Any] = {"meta": self.meta(), "implementations": {}}
        if self.server_cores is None:
            self.notes.append("fewer than 2 usable cores: server and generator share one")
        impls = []
        for name in self.config.implementations:
            impl = IMPLEMENTATIONS.get(name) or _tree_variant(name, self.config.trees)
            skip = self._skip_reason(impl)
            if skip:
                self.notes.append(f"{name} skipped: {skip}")
                self.progress(f"{name}: skipped ({skip})")
                continue
            impls.append(impl)
        out: dict[str, Any] = {
            impl.name: {
                "label": impl.label,
                "note": impl.note,
                "pinned": impl.pinned,
                "tcp": {},
                "udp": None,
                "memory": {},
                "fairness": None,
                "pipelined": None,
            }
            for impl in impls
        }
        self.run_load(impls, out)
        if self.config.fairness:
            self.run_fairness(impls, out)
        for impl in impls:
            if impl.memory:
                self.run_memory(impl, out)
        results["implementations"] = out
        results["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        busy = [
            point["other_cpu_pct"]
            for impl in out.values()
            for point in [*impl["tcp"].values(), *([impl["udp"]] if impl["udp"] else [])]
        ]
        disturbed = [b for b in busy if b > 20]
        if disturbed:
            self.notes.append(
                f"other processes used > 20% of a core during {len(disturbed)} of {len(busy)} "
                f"points (up to {max(disturbed):.0f}%): absolute req/s and latencies are "
                "disturbed there; CPU µs/req and ratios within this run hold up better"
            )
        results["generator_ceiling"] = generator_ceiling(out)
        results["targets"] = evaluate_targets(out, self.targets)
        results["notes"] = self.notes
        return results

    def _skip_reason(self, impl: Implementation) -> str | None:
        if impl.needs_uvloop and _uvloop_version() is None:
            return "uvloop is not installed"
        if impl.needs_demos and not (self.config.demos_dir / "SockServTCP.py").exists():
            return f"no classic demos in {self.config.demos_dir}"
        if not impl.pinned and len(usable_cores()) < 2:
            return "needs 2 cores"
        if impl.needs_cc and compiler() is None:
            return "no C compiler (set CC, or install gcc)"
        return None


# -- summaries ----------------------------------------------------------------------

_SUMMARY_KEYS = (
    "rps",
    "p50_us",
    "p90_us",
    "p99_us",
    "server_us_per_req",
    "server_cpu_pct",
    "gen_cpu_pct",
    "other_cpu_pct",
)


def _prime(port: int) -> None:
    """One short session before measuring: every server then runs in the state it
    would be in after its first client left.

    A bare asyncio Protocol reads with ``recv(256 KiB)``: glibc serves that with
    mmap() (~20 us per read) until one such buffer is freed whole -- which only a
    read at end of input does, after which every read comes from the heap.  Without
    this a run that skips the 1-connection point measures bare asyncio at a fifth of
    its speed.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.sendall(b"prime\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(64)
            if not chunk:
                break
            reply += chunk


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Median of each metric over the repeats, the spread of req/s, and the raw runs."""
    summary: dict[str, Any] = {"runs": list(runs)}
    for key in _SUMMARY_KEYS:
        values = [float(r[key]) for r in runs]
        summary[key] = statistics.median(values) if values else 0.0
    rps = [float(r["rps"]) for r in runs]
    median = summary["rps"]
    summary["spread_pct"] = 100 * (max(rps) - min(rps)) / median if median else 0.0
    summary["gen_us_per_req"] = statistics.median(
        [1e6 * r["gen_cpu_pct"] / 100 / r["rps"] for r in runs if r["rps"]] or [0.0]
    )
    for key in ("served", "connected", "errors", "lost"):
        if key in runs[0]:
            summary[key] = (
                min(int(r[key]) for r in runs)
                if key != "errors"
                else max(int(r[key]) for r in runs)
            )
    return summary


def generator_ceiling(impls: dict[str, Any]) -> dict[str, Any]:
    """The most the generator achieved against any server, and what it would manage
    at 100 % of its core (from its own CPU cost per request at that point)."""
    best: dict[str, Any] | None = None
    for name, data in impls.items():
        for conns, point in data["tcp"].items():
            if best is None or point["rps"] > best["rps"]:
                best = {
                    "implementation": name,
                    "connections": int(conns),
                    "rps": point["rps"],
                    "gen_cpu_pct": point["gen_cpu_pct"],
                    "server_cpu_pct": point["server_cpu_pct"],
                    "gen_us_per_req": point["gen_us_per_req"],
                }
    if best is None:
        return {}
    best["estimated_max_rps"] = 1e6 / best["gen_us_per_req"] if best["gen_us_per_req"] else 0.0
    return best


def _tree_variant(name: str, trees: Sequence[tuple[str, Path]]) -> Implementation:
    base, _, tag = name.partition("@")
    impl = IMPLEMENTATIONS[base]
    tree = dict(trees)[tag].resolve()
    return replace(impl, name=name, label=f"{impl.label} [{tag}]", tree=str(tree))


def with_trees(config: BenchConfig) -> BenchConfig:
    """Add ``NAME@TAG`` for every asyncnet implementation selected and every tree."""
    if not config.trees:
        return config
    names = list(config.implementations)
    for tag, _ in config.trees:
        names += [f"{n}@{tag}" for n in config.implementations if n.startswith("asyncnet")]
    return replace(config, implementations=tuple(names))


def run_bench(
    config: BenchConfig,
    progress: Callable[[str], None] | None = None,
    targets: Sequence[Target] | None = None,
) -> dict[str, Any]:
    """Run the benchmark described by ``config``, judge it by ``targets`` (``targets.toml``
    when None); return every number (JSON-ready)."""
    config = with_trees(config)
    tags = {tag for tag, _ in config.trees}
    unknown = [
        name
        for name in config.implementations
        if name not in IMPLEMENTATIONS
        and not (name.partition("@")[0] in IMPLEMENTATIONS and name.partition("@")[2] in tags)
    ]
    if unknown:
        raise ValueError(f"unknown implementation(s): {', '.join(unknown)}")
    return Harness(config, progress, targets).run()
