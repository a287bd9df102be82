"""The benchmark harness (asyncnet.bench) at tiny scale: it runs, it measures, it reports.

No speed is asserted anywhere: only that every number the harness promises is
there, is positive where it must be, and comes from a real run over loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from asyncnet import LineHandler, tcp_server, udp_server
from asyncnet.bench.harness import (
    IMPLEMENTATIONS,
    BenchConfig,
    evaluate_targets,
    generator_ceiling,
    summarize,
    with_trees,
)
from asyncnet.bench.loadgen import hold_idle, percentile, tcp_pingpong, udp_pingpong
from asyncnet.bench.procstat import cpu_seconds, descendants, tree_memory_kib
from asyncnet.bench.report import markdown_table, parse_points
from asyncnet.demos.upper import Upper, UpperDatagram

ROOT = Path(__file__).resolve().parents[1]
LINUX = sys.platform.startswith("linux")
linux_only = pytest.mark.skipif(not LINUX, reason="the benchmark reads /proc")


# -- sans-IO pieces ------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.50) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7], 0.99) == 7
    assert percentile([], 0.5) == 0.0


def run_result(rps: float, p99: float = 1000.0, **extra: Any) -> dict[str, Any]:
    result = {
        "rps": rps,
        "p50_us": p99 / 2,
        "p90_us": p99 / 1.5,
        "p99_us": p99,
        "server_us_per_req": 1e6 / rps,
        "server_cpu_pct": 100.0,
        "gen_cpu_pct": 50.0,
        "other_cpu_pct": 0.0,
        "served": 10,
        "connected": 10,
        "errors": 0,
        "lost": 0,
    }
    result.update(extra)
    return result


def test_summarize_reports_medians_spread_and_keeps_raw_runs() -> None:
    runs = [run_result(900.0), run_result(1100.0, errors=2), run_result(1000.0, served=9)]
    summary = summarize(runs)
    assert summary["rps"] == 1000.0
    assert summary["spread_pct"] == pytest.approx(20.0)
    assert summary["runs"] == runs
    assert summary["served"] == 9  # the worst repeat, not the best
    assert summary["errors"] == 2
    assert summary["gen_us_per_req"] == pytest.approx(500.0)  # 50 % of a core at 1000/s


def test_targets_are_ratios_within_the_run_and_none_when_unmeasured() -> None:
    def impl(rps100: float, rps1000: float, p99: float) -> dict[str, Any]:
        return {
            "tcp": {
                "100": summarize([run_result(rps100)]),
                "1000": summarize([run_result(rps1000, p99)]),
            },
            "udp": None,
            "memory": {},
        }

    impls = {
        "threaded": impl(1000.0, 1000.0, 400_000.0),
        "asyncnet-uvloop": impl(2000.0, 1500.0, 30_000.0),
    }
    targets = {t["target"]: t for t in evaluate_targets(impls)}
    at100 = targets["asyncnet-uvloop vs threaded, req/s @100"]
    assert (at100["value"], at100["met"]) == (2.0, True)
    at1000 = targets["asyncnet-uvloop vs threaded, req/s @1000"]
    assert (at1000["value"], at1000["met"]) == (1.5, False)
    p99 = targets["asyncnet-uvloop vs threaded, p99 @1000"]
    assert p99["value"] == pytest.approx(0.075)
    assert p99["met"] is True
    missing = targets["asyncnet-uvloop UDP vs socketserver.UDPServer"]
    assert (missing["value"], missing["met"]) == (None, None)
    ceiling = generator_ceiling(impls)
    assert (ceiling["implementation"], ceiling["connections"]) == ("asyncnet-uvloop", 100)


def test_parse_points_refuses_nonsense() -> None:
    assert parse_points("1,10, 100") == (1, 10, 100)
    for bad in ("", "0", "5,-1", "x"):
        with pytest.raises(ValueError, match=r"."):
            parse_points(bad)


def test_tree_variants_name_and_run_from_their_tree(tmp_path: Path) -> None:
    config = with_trees(
        BenchConfig(implementations=("threaded", "asyncnet-uvloop"), trees=(("p", tmp_path),))
    )
    assert config.implementations == ("threaded", "asyncnet-uvloop", "asyncnet-uvloop@p")
    assert set(BenchConfig.quick().implementations) <= set(IMPLEMENTATIONS)


# -- /proc readers -------------------------------------------------------------------


GRANDCHILD = """
import subprocess, sys
code = {code!r}
subprocess.run([sys.executable, "-c", code])
print("reaped", flush=True)
input()
"""


@linux_only
def test_cpu_seconds_count_a_reaped_busy_child() -> None:
    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    with subprocess.Popen(
        [sys.executable, "-c", GRANDCHILD.format(code=busy)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "reaped\n"
        assert cpu_seconds(proc.pid) >= 0.25  # clock ticks: allow for rounding
        assert cpu_seconds(proc.pid, tree=False) >= 0.25  # cutime: reaped children count
        proc.communicate("\n", timeout=10)


@linux_only
def test_descendants_and_memory_of_a_process_tree() -> None:
    waiting = "print('up', flush=True); input()"
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {waiting!r}])",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "up\n"  # the grandchild runs
        (child,) = descendants(proc.pid)
        assert tree_memory_kib(proc.pid) > tree_memory_kib(child) > 0
        proc.communicate("\n", timeout=10)
    with pytest.raises(ProcessLookupError):
        cpu_seconds(proc.pid)


# -- the load generator against real servers, in this loop ---------------------------


@linux_only
async def test_tcp_pingpong_counts_replies_against_an_asyncnet_server() -> None:
    async with tcp_server(Upper) as server:
        result = await tcp_pingpong(
            *server.address, connections=2, duration=0.3, warmup=0.05, server_pid=os.getpid()
        )
    assert result["requests"] > 0
    assert result["rps"] > 0
    assert result["connected"] == result["served"] == 2
    assert result["errors"] == 0
    assert 0 < result["p50_us"] <= result["p99_us"] <= result["max_us"]
    assert result["server_cpu_s"] > 0  # this process served, so it spent CPU time


class WrongCase(LineHandler):
    def handle_line(self, line: str) -> str:
        return line.lower()


async def test_tcp_pingpong_notices_wrong_replies() -> None:
    async with tcp_server(WrongCase) as server:
        result = await tcp_pingpong(*server.address, connections=2, duration=0.2, warmup=0.05)
    assert result["errors"] == 2
    assert result["requests"] == 0


async def test_tcp_pingpong_max_requests_ends_the_window_early() -> None:
    async with tcp_server(Upper) as server:
        started = time.monotonic()
        result = await tcp_pingpong(
            *server.address, connections=1, duration=30, warmup=0.0, max_requests=50
        )
    assert result["requests"] == 50
    assert time.monotonic() - started < 20


@linux_only
async def test_udp_pingpong_keeps_datagrams_in_flight() -> None:
    async with udp_server(UpperDatagram) as server:
        result = await udp_pingpong(
            *server.address, inflight=3, duration=0.3, warmup=0.05, server_pid=os.getpid()
        )
    assert result["requests"] > 0
    assert result["errors"] == 0
    assert result["lost"] == 0


@linux_only
async def test_hold_idle_opens_answered_connections() -> None:
    async with tcp_server(Upper) as server:
        result = await hold_idle(
            *server.address, connections=20, server_pid=os.getpid(), settle=0.05
        )
    assert result["connected"] == result["answered"] == 20
    assert result["loaded_kib"] > 0


# -- the whole harness, as `make bench-quick` runs it, at tiny scale -----------------


@linux_only
@pytest.mark.slow
def test_bench_cli_smoke(tmp_path: Path) -> None:
    """One point, 2 connections, 0.5 s: the JSON has every field, numbers are > 0, and
    --markdown writes the table next to the JSON."""
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "asyncnet.bench",
            "--impl=asyncnet-asyncio",
            "--impl=bare-asyncio",
            "--points=2",
            "--memory-points=20",
            "--repeats=1",
            "--duration=0.5",
            "--warmup=0.1",
            f"--json={out}",
            "--no-plot",
            "--no-clients",
            "--markdown",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    meta = results["meta"]
    assert meta["nproc"] >= 1
    assert meta["config"]["points"] == [2]
    assert set(results["implementations"]) == {"asyncnet-asyncio", "bare-asyncio"}
    for name, impl in results["implementations"].items():
        point = impl["tcp"]["2"]
        for key in ("rps", "p50_us", "p99_us", "server_us_per_req", "server_cpu_pct"):
            assert point[key] > 0, (name, key, point)
        assert point["served"] == point["connected"] == 2
        assert len(point["runs"]) == 1
        assert impl["udp"]["rps"] > 0
        memory = impl["memory"]["20"]
        assert memory["connected"] == 20
        assert memory["loaded_kib"] > 0
        fairness = impl["fairness"]  # issue 10 item 3: the quiet client during a flood
        assert fairness["rps"] > 0
        assert fairness["p99_us"] > 0
        assert fairness["flood_lines_per_s"] > 0
    assert results["generator_ceiling"]["rps"] > 0
    for target in results["targets"]:  # the points (100, 1000) were not run
        assert set(target) == {"target", "op", "goal", "value", "met"}
        if "during a flood" in target["target"] and "asyncio" in target["target"]:
            assert target["value"] > 0
        else:
            assert target["value"] is None
    assert f"json: {out}" in done.stdout
    # --markdown: the table printed is also written next to the JSON
    assert out.with_suffix(".md").read_text().strip() == markdown_table(results).strip()
    assert "| asyncio Protocol |" in out.with_suffix(".md").read_text()
    pytest.importorskip("matplotlib")
    from asyncnet.bench.report import write_plot

    png = tmp_path / "bench.png"
    write_plot(results, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = markdown_table(results)
    assert "asyncio Protocol" in table
    assert "req/s @2" in table


def test_load_generator_refuses_a_non_loopback_target() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "asyncnet.bench.loadgen", "tcp", "--host=192.0.2.1", "--port=9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "loopback" in done.stderr


def test_event_loop_is_clean_after_generator_runs() -> None:
    """The generator's coroutines can be driven by asyncio.run() in a script."""

    async def main() -> int:
        async with tcp_server(Upper) as server:
            result = await tcp_pingpong(*server.address, connections=1, duration=0.1, warmup=0.0)
        return int(result["requests"])

    assert asyncio.run(main()) > 0
