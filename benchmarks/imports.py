"""``python -m benchmarks.imports``: how long asyncnet takes to import and to answer ``--help``.

Each measurement is a fresh interpreter (``python -c "import asyncnet"``,
``python -m asyncnet.demos.NAME --help``) timed from the outside, wall clock, best
and median of ``--runs``.  The commands run interleaved (one round runs each once),
so a burst of load from elsewhere on the machine spreads over all of them instead of
landing on one.  Two ways of starting are measured:

``cached``
    bytecode compiled once and reused, as an installed package runs (the ``.pyc``
    files go to a temporary ``PYTHONPYCACHEPREFIX``, never into the checkout);
``source``
    ``PYTHONDONTWRITEBYTECODE=1`` with no ``__pycache__`` in the checkout: asyncnet
    is compiled from source on every start, as a development checkout often runs.

The targets: ``import asyncnet`` under 100 ms and every demo's ``--help`` under
200 ms, in both ways of starting; and no aiohttp, aioftp, aiosmtplib or aiosmtpd
loaded by ``import asyncnet``, nor aiohttp or aioftp by ``import asyncnet.mail``.
Each line also shows which of those heavy libraries the command loaded.  A bare
interpreter (``pass``) and ``import asyncio`` are measured as the floor.

Run from the repository root::

    python -m benchmarks.imports                 # both ways, 15 runs each
    python -m benchmarks.imports --runs 5 --mode cached
    python -m benchmarks.imports --json imports.json

Exit status 0 whether or not the targets are met (this measures, it does not test).
"""

from __future__ import annotations

import argparse
import json
import os
import pkgutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Command", "Result", "commands", "main", "measure"]

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("aiohttp", "aioftp", "aiosmtplib", "aiosmtpd")
IMPORT_TARGET_MS = 100.0
HELP_TARGET_MS = 200.0
MODES = ("cached", "source")

# The public modules (each imported on its own, as a program that needs only it would).
MODULES = (
    "asyncnet.errors",
    "asyncnet.text",
    "asyncnet.byteorder",
    "asyncnet.protocols",
    "asyncnet.clients",
    "asyncnet.servers",
    "asyncnet.chat",
    "asyncnet.dns",
    "asyncnet.testing",
    "asyncnet.creosote",
    "asyncnet.mail",
    "asyncnet.ftp",
    "asyncnet.web",
)

# Printed by the child after its work, so the parent learns which heavy libraries
# the command loaded without a second run.
_REPORT_HEAVY = (
    "import sys as _s; print('\\nHEAVY=' + ','.join("
    f"m for m in {HEAVY!r} if m in _s.modules), file=_s.stderr)"
)


@dataclass
class Command:
    """One thing to time: a label, its argv (after the interpreter), its target if any."""

    label: str
    argv: list[str]
    kind: str  # "floor", "import" or "help"
    target_ms: float | None = None
    forbidden: tuple[str, ...] = ()  # heavy libraries it must not load


@dataclass
class Result:
    """The timings of one command in one way of starting."""

    label: str
    kind: str
    mode: str
    times_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # the child's user + system time
    heavy: list[str] = field(default_factory=list)
    status: int = 0
    target_ms: float | None = None
    forbidden: list[str] = field(default_factory=list)

    @property
    def best(self) -> float:
        """The fastest run: the least disturbed by the rest of the machine."""
        return min(self.times_ms)

    @property
    def median(self) -> float:
        """The median run."""
        return statistics.median(self.times_ms)

    @property
    def cpu(self) -> float:
        """The least CPU time of a run: barely moved by other load on the machine."""
        return min(self.cpu_ms)

    def verdict(self) -> str:
        """``met``, ``MISSED`` or ``-`` (no target) for this command."""
        if self.status != 0:
            return "FAILED"
        missed = self.target_ms is not None and self.best >= self.target_ms
        if missed or set(self.heavy) & set(self.forbidden):
            return "MISSED"
        return "met" if self.target_ms is not None or self.forbidden else "-"


def demo_names() -> list[str]:
    """Every ``asyncnet.demos.<name>`` command (the public, non-underscore modules)."""
    import asyncnet.demos

    return sorted(
        m.name for m in pkgutil.iter_modules(asyncnet.demos.__path__) if not m.name.startswith("_")
    )


def commands() -> list[Command]:
    """Everything the benchmark times, in the order the report shows it."""
    found = [
        Command("python -c pass", ["-c", "pass"], "floor"),
        Command("import asyncio", ["-c", "import asyncio"], "floor"),
        Command(
            "import asyncnet",
            ["-c", "import asyncnet"],
            "import",
            IMPORT_TARGET_MS,
            HEAVY,
        ),
        Command(
            "from asyncnet import LineHandler, tcp_server",
            ["-c", "from asyncnet import LineHandler, tcp_server"],
            "import",
            forbidden=HEAVY,
        ),
    ]
    for module in MODULES:
        forbidden: tuple[str, ...] = ()
        if module == "asyncnet.mail":
            forbidden = ("aiohttp", "aioftp")
        elif module not in ("asyncnet.ftp", "asyncnet.web"):
            forbidden = HEAVY
        found.append(
            Command(f"import {module}", ["-c", f"import {module}"], "import", None, forbidden)
        )
    for name in demo_names():
        found.append(
            Command(
                f"demos.{name} --help",
                ["-m", f"asyncnet.demos.{name}", "--help"],
                "help",
                HELP_TARGET_MS,
            )
        )
    return found


def _environment(mode: str, prefix: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPYCACHEPREFIX", None)
    env["ASYNCNET_NO_UVLOOP"] = "1"  # the same loop either way; uvloop is not what is timed
    if mode == "cached":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = prefix
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _argv(command: Command) -> list[str]:
    if command.argv[0] == "-c":  # report the heavy libraries from the same process
        return [sys.executable, "-c", f"{command.argv[1]}\n{_REPORT_HEAVY}"]
    return [sys.executable, *command.argv]


def _heavy_of_demo(command: Command, env: dict[str, str]) -> list[str]:
    """The heavy libraries a demo's ``--help`` loads (one untimed run, in-process)."""
    module = command.argv[1]
    probe = (
        "import runpy, sys, io, contextlib\n"
        f"sys.argv = [{module!r}, '--help']\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        runpy.run_module({module!r}, run_name='__main__')\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"{_REPORT_HEAVY}"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True
    )
    return _parse_heavy(done.stderr)


def _parse_heavy(stderr: str) -> list[str]:
    for line in reversed(stderr.splitlines()):
        if line.startswith("HEAVY="):
            return [m for m in line[len("HEAVY=") :].split(",") if m]
    return []


def measure(chosen: Sequence[Command], mode: str, runs: int) -> list[Result]:
    """Time every command ``runs`` times in ``mode``, interleaved, after one warm-up round."""
    with tempfile.TemporaryDirectory(prefix="asyncnet-pyc-") as prefix:
        env = _environment(mode, prefix)
        results = [
            Result(c.label, c.kind, mode, target_ms=c.target_ms, forbidden=list(c.forbidden))
            for c in chosen
        ]
        # The warm-up round fills the bytecode cache (cached) and the OS page cache.
        for command, result in zip(chosen, results, strict=True):
            warm = subprocess.run(_argv(command), env=env, cwd=ROOT, capture_output=True, text=True)
            result.status = warm.returncode
            if command.kind == "help":
                result.heavy = _heavy_of_demo(command, env)
            else:
                result.heavy = _parse_heavy(warm.stderr)
        for _ in range(runs):
            for command, result in zip(chosen, results, strict=True):
                wall, cpu, status = _timed(_argv(command), env)
                result.times_ms.append(wall)
                result.cpu_ms.append(cpu)
                result.status = result.status or status
    return results


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Run ``argv`` once: wall ms, the child's CPU ms (``wait4``), its exit status."""
    started = time.perf_counter()
    child = subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, raw, usage = os.wait4(child.pid, 0)
    wall = (time.perf_counter() - started) * 1000
    child.returncode = os.waitstatus_to_exitcode(raw)  # reaped here, not by Popen
    return wall, (usage.ru_utime + usage.ru_stime) * 1000, child.returncode


def report(results: Sequence[Result]) -> str:
    """The table: one line per command and mode, then the targets' summary."""
    lines = []
    width = max(len(r.label) for r in results)
    for mode in MODES:
        rows = [r for r in results if r.mode == mode]
        if not rows:
            continue
        runs = len(rows[0].times_ms)
        lines.append(f"\n{mode}: wall best / median and least CPU of {runs} runs (ms)")
        lines.append(
            f"  {'command':<{width}}  {'best':>6}  {'median':>6}  {'cpu':>6}  {'target':>9}"
            "  verdict  loads"
        )
        for r in rows:
            target = "+".join(
                ([f"<{r.target_ms:.0f}"] if r.target_ms is not None else [])
                + (["lean"] if r.forbidden else [])
            )
            loads = ",".join(r.heavy) or "-"
            lines.append(
                f"  {r.label:<{width}}  {r.best:6.1f}  {r.median:6.1f}  {r.cpu:6.1f}"
                f"  {target or '-':>9}  {r.verdict():7}  {loads}"
            )
    lines.append(
        "\n<N: best run under N ms; lean: loads none of the heavy libraries it must not"
        f" ({', '.join(HEAVY)}; for asyncnet.mail: aiohttp, aioftp)"
    )
    judged = [r for r in results if r.verdict() != "-"]
    missed = [r for r in judged if r.verdict() != "met"]
    lines.append(f"\ntargets: {len(judged) - len(missed)} of {len(judged)} met")
    lines.extend(f"  {r.verdict()}: {r.label} ({r.mode}, best {r.best:.1f} ms)" for r in missed)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the table, optionally write the raw numbers as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.imports",
        description="Import time of asyncnet and its modules, --help time of every demo.",
    )
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each command (15)")
    parser.add_argument(
        "--mode", choices=(*MODES, "both"), default="both", help="bytecode cached, source, or both"
    )
    parser.add_argument("--only", metavar="TEXT", help="only the commands whose label has TEXT")
    parser.add_argument("--json", type=Path, help="also write every timing to this file")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be 1 or more")
    if (ROOT / "asyncnet" / "__pycache__").exists():
        print(
            "note: asyncnet/__pycache__ exists, so 'source' reads bytecode too",
            file=sys.stderr,
        )
    chosen = [c for c in commands() if args.only is None or args.only in c.label]
    if not chosen:
        parser.error(f"no command label contains {args.only!r}")
    modes = MODES if args.mode == "both" else (args.mode,)
    results: list[Result] = []
    for mode in modes:
        results.extend(measure(chosen, mode, args.runs))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {sys.executable}")
    print(report(results))
    if args.json is not None:
        rows = [
            {**asdict(r), "best": r.best, "median": r.median, "cpu": r.cpu, "verdict": r.verdict()}
            for r in results
        ]
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
