"""The benchmark harness (benchmarks/) at tiny scale: it runs, it measures, it reports.

No speed is asserted anywhere: only that every number the harness promises is
there, is positive where it must be, and comes from a real run over loopback.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from asyncnet import LineHandler, tcp_server, udp_server
from asyncnet.demos.upper import Upper, UpperDatagram
from benchmarks.harness import (
    IMPLEMENTATIONS,
    BenchConfig,
    generator_ceiling,
    summarize,
    with_trees,
)
from benchmarks.loadgen import hold_idle, tcp_pingpong, udp_pingpong
from benchmarks.pingpong import percentile
from benchmarks.procstat import cpu_seconds, descendants, tree_memory_kib
from benchmarks.report import generator_lines, markdown_table, parse_points
from benchmarks.targets import Target, TargetsError, evaluate_targets, load_targets, parse_targets

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


def test_generator_lines_name_each_generator_its_rows_and_why_python_ran() -> None:
    c_run = {"generator": "c"}
    fallback = {"generator": "python", "generator_note": "C generator unavailable: no cc"}
    results: dict[str, Any] = {
        "implementations": {
            "a": {
                "tcp": {"1": {"runs": [c_run]}, "10": {"runs": [c_run]}},
                "udp": {"runs": [{"generator": "python"}]},
                "memory": {"1000": {"generator": "python"}},
                "fairness": None,
                "pipelined": {"runs": [fallback]},
            },
        }
    }
    assert generator_lines(results) == [
        "load generator: C (benchmarks/cload/loadgen.c) for tcp; "
        "Python (benchmarks/loadgen.py) for pipelined, udp, memory",
        "  (C generator unavailable: no cc)",
    ]
    assert generator_lines({"implementations": {"a": {"tcp": {}}}}) == []


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


def test_targets_file_names_known_implementations_once_each() -> None:
    """targets.toml is data: every target reads a row this benchmark runs, names are unique."""
    targets = load_targets(known=IMPLEMENTATIONS)
    assert len({t.name for t in targets}) == len(targets) >= 10
    for target in targets:
        assert target.row in IMPLEMENTATIONS
        assert target.vs is None or target.vs in IMPLEMENTATIONS
        assert (target.threshold is None) == (target.op == "info")
    by_name = {t.name: t for t in targets}
    memory = by_name["uvloop-memory-10000"]
    assert (memory.phase, memory.connections, memory.vs) == ("memory", 10000, None)


def test_target_kinds_absolute_inverse_and_info() -> None:
    def impl(us_per_req: float, kib: float) -> dict[str, Any]:
        point = summarize([run_result(1000.0)])
        point["server_us_per_req"] = us_per_req
        return {"tcp": {"1000": point}, "udp": None, "memory": {"10": {"kib_per_conn": kib}}}

    impls = {"asyncnet-uvloop": impl(8.0, 1.2), "bare-uvloop": impl(10.0, 0.9)}

    def target(**fields: Any) -> Target:
        return Target(**{"row": "asyncnet-uvloop", "name": "n", "text": "shown", **fields})

    cheaper = target(
        phase="tcp",
        connections=1000,
        metric="server_us_per_req",
        vs="bare-uvloop",
        inverse=True,
        op=">=",
        threshold=1.2,
    )
    judged = cheaper.judge(impls)
    assert judged["value"] == pytest.approx(1.25)  # theirs / mine: a cost, lower is better
    assert {k: judged[k] for k in ("name", "target", "op", "goal", "met")} == {
        "name": "n",
        "target": "shown",
        "op": ">=",
        "goal": 1.2,
        "met": True,
    }
    memory = target(phase="memory", connections=10, metric="kib_per_conn", op="<=", threshold=1.0)
    assert (memory.value(impls), memory.judge(impls)["met"]) == (1.2, False)
    info = target(phase="tcp", connections=1000, metric="rps", vs="bare-uvloop", op="info")
    assert (info.judge(impls)["value"], info.judge(impls)["met"]) == (1.0, None)
    udp = target(phase="udp", metric="rps", op=">=", threshold=1.0)
    assert (udp.judge(impls)["value"], udp.judge(impls)["met"]) == (None, None)  # not run


GOOD_TARGET = """
[[target]]
name = "a"
text = "asyncnet-uvloop vs threaded, req/s @100"
phase = "tcp"
connections = 100
metric = "rps"
row = "asyncnet-uvloop"
vs = "threaded"
op = ">="
threshold = 1.6
"""


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("threshold = 1.6", "treshold = 1.6"), "unknown key(s) treshold"),
        (('op = ">="', 'op = ">"'), "op must be one of"),
        (('phase = "tcp"', 'phase = "disk"'), "phase must be one of"),
        (('metric = "rps"', 'metric = "kib_per_conn"'), "a tcp target reads one of"),
        (("connections = 100\n", ""), "needs connections = a positive integer"),
        (('vs = "threaded"', 'vs = "threadded"'), "no implementation 'threadded'"),
        (("threshold = 1.6", 'threshold = "1.6"'), "needs threshold = a number"),
        (('op = ">="', 'op = "info"'), "takes no threshold"),
        (('name = "a"\n', ""), "needs name = a non-empty string"),
        (("[[target]]", "[[targets]]"), "unknown top-level key(s) targets"),
        (("[[target]]", "[[target]"), "not valid TOML"),
    ],
)
def test_a_bad_targets_file_says_which_target_and_what(edit: tuple[str, str], message: str) -> None:
    text = GOOD_TARGET.replace(*edit)
    assert text != GOOD_TARGET
    with pytest.raises(TargetsError) as caught:
        parse_targets(text, "t.toml", known=IMPLEMENTATIONS)
    assert str(caught.value).startswith("t.toml: ")
    assert message in str(caught.value)


def test_targets_file_duplicates_and_emptiness() -> None:
    (target,) = parse_targets(GOOD_TARGET, known=IMPLEMENTATIONS)
    assert (target.connections, target.threshold, target.inverse) == (100, 1.6, False)
    with pytest.raises(TargetsError, match=r"target 2 \(a\): the name 'a' is used twice"):
        parse_targets(GOOD_TARGET * 2, "t.toml")
    with pytest.raises(TargetsError, match="no \\[\\[target\\]\\] tables"):
        parse_targets("", "t.toml")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--targets", "{tmp}/missing.toml"], "cannot read the targets file"),
        (["--targets", "{tmp}/bad.toml"], "bad.toml: target 1 (a): op must be one of"),
        (["--demos", "{tmp}"], "--demos wants the folder holding SockServTCP.py"),
    ],
)
def test_bench_cli_refuses_bad_paths_before_running(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    (tmp_path / "bad.toml").write_text(GOOD_TARGET.replace('op = ">="', 'op = "=="'))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", *(a.format(tmp=tmp_path) for a in argv)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""  # nothing was measured


def _imports(module: Path, package: str) -> set[str]:
    """The modules of ``package`` that ``module`` imports, at the top or in a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text(), str(module))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 1:
                names = [base] if base else [alias.name for alias in node.names]
            elif base == package:
                names = [alias.name for alias in node.names]
            elif base.startswith(package + "."):
                names = [base.removeprefix(package + ".")]
            else:
                continue
            found.update(name.split(".")[0] for name in names)
        elif isinstance(node, ast.Import):
            found.update(
                alias.name.split(".")[1]
                for alias in node.names
                if alias.name.startswith(package + ".")
            )
    return found


def test_benchmark_modules_import_each_other_without_a_cycle() -> None:
    """No module of the benchmark imports back one that imports it, even inside a function."""
    folder = ROOT / "benchmarks"
    graph = {path.stem: _imports(path, "benchmarks") for path in folder.glob("*.py")}
    assert graph["loadgen"] >= {"fairness", "pingpong"}  # the parser sees both kinds of import
    assert "clientasync" in graph["clientload"]
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join([*path, name])}"
        if name in done:
            return
        for imported in graph.get(name, ()):
            visit(imported, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())


def test_the_package_and_its_tour_do_not_import_the_benchmark() -> None:
    """The wheel holds no benchmark: asyncnet (the tour's bench stop included) runs without it."""
    code = (
        "import sys\n"
        "from asyncnet import run\n"
        "from asyncnet.demos.tour import bench_stop\n"
        "run(bench_stop())\n"  # on uvloop when installed, as the tour runs
        "print(sorted(m for m in sys.modules if m.startswith(('benchmarks', 'asyncnet.bench'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,  # benchmarks/ is importable from here: it must still not be imported
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[-1] == "[]"
    assert "asyncnet LineHandler" in lines[0]
    assert "bare asyncio Protocol" in lines[1]
    assert " req/s, p99 " in lines[1]
    assert not (ROOT / "asyncnet" / "bench").exists()


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
    argv = [
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
    ]
    # Its own session: should it hang, the harness and every server it started are
    # killed together, and none outlives the test.
    with subprocess.Popen(
        [sys.executable, "-m", "benchmarks", *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as harness:
        try:
            stdout, stderr = harness.communicate(timeout=50)
        except subprocess.TimeoutExpired:
            os.killpg(harness.pid, signal.SIGKILL)
            stdout, stderr = harness.communicate()
            pytest.fail(f"the harness did not finish in 50 s: {stdout[-2000:]}{stderr[-2000:]}")
    done = subprocess.CompletedProcess(harness.args, harness.returncode, stdout, stderr)
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
        fairness = impl["fairness"]  # the quiet client during a flood
        assert fairness["rps"] > 0
        assert fairness["p99_us"] > 0
        assert fairness["flood_lines_per_s"] > 0
    assert results["generator_ceiling"]["rps"] > 0
    for target in results["targets"]:  # the targets' points (100, 1000) were not run
        assert set(target) == {"name", "target", "op", "goal", "value", "met"}
        if "during a flood" in target["target"] and "asyncio" in target["target"]:
            assert target["value"] > 0
        else:
            assert target["value"] is None
    assert f"json: {out}" in done.stdout
    # Which generator drove each kind of row, in the report and under the table.
    said = next(line for line in done.stdout.splitlines() if line.startswith("load generator: "))
    for phase in ("tcp", "udp", "memory", "fairness"):
        assert phase in said, said
    assert said in out.with_suffix(".md").read_text()
    # --markdown: the table printed is also written next to the JSON
    assert out.with_suffix(".md").read_text().strip() == markdown_table(results).strip()
    assert "| asyncio Protocol |" in out.with_suffix(".md").read_text()
    pytest.importorskip("matplotlib")
    from benchmarks.report import write_plot

    png = tmp_path / "bench.png"
    write_plot(results, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = markdown_table(results)
    assert "asyncio Protocol" in table
    assert "req/s @2" in table


RESETTING_SERVER = """
import socket, struct
listener = socket.create_server(("127.0.0.1", 0))
print(f"listening on tcp://127.0.0.1:{listener.getsockname()[1]}", flush=True)
while True:
    connection, _ = listener.accept()
    connection.recv(64)  # the request is in: the client is waiting for its reply
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()  # an RST, not a FIN: the client's read fails
"""


@linux_only
def test_a_server_that_fails_its_first_session_is_noted_and_stopped() -> None:
    """A broken server is a note in the report, not a traceback, and is not left running."""
    from benchmarks.harness import Harness, Implementation

    marker = "resetting-server-of-test-bench"
    impl = Implementation(
        "reset", "resets", ("-c", f"# {marker}\n{RESETTING_SERVER}"), has_udp=False, memory=False
    )
    harness = Harness(BenchConfig(implementations=(), points=(2,), repeats=1))
    out = {"reset": {"tcp": {}, "udp": None, "memory": {}, "fairness": None}}
    harness.run_load([impl], out)
    assert out["reset"]["tcp"] == {}
    (note,) = harness.notes
    assert note.startswith("reset: the first session failed: ")
    assert "reset by peer" in note
    for pid in descendants(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile
        assert marker.encode() not in cmdline, "the server outlived the harness"


def test_load_generator_refuses_a_non_loopback_target() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.loadgen", "tcp", "--host=192.0.2.1", "--port=9"],
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
