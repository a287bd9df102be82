"""Client side: the blocking stdlib originals against asyncnet on one event loop.

The same mixed workload (N mailboxes x M messages over POP3, N SMTP sends, K FTP
files, P HTTP pages; :class:`~benchmarks.workload.Workload`) is done by

* ``sequential``: poplib, smtplib, ftplib and urllib.request, one job after another;
* ``threads``: the same calls in a ``ThreadPoolExecutor`` of ``concurrency`` threads;
* ``asyncnet``: asyncnet's mail, FTP and web clients, ``concurrency`` jobs at once on
  one event loop,

against loopback servers running in a separate process
(``python -m benchmarks.clientload serve``).  Every run is a fresh process; we
report the median wall time over the repeats, the peak RSS (and the RSS after imports,
so the cost of the work is visible apart from the cost of the libraries), and the
most threads the process had (sampled from outside and counted inside).

    python -m benchmarks.clients --quick        # just this part
    python -m benchmarks                        # part of the full bench (--no-clients)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from .paths import PACKAGE_PARENT
from .workload import Workload

__all__ = [
    "MODES",
    "SIZES",
    "client_sizes",
    "markdown_table",
    "print_report",
    "report",
    "run_clients",
    "write_plot",
]

MODES = ("sequential", "threads", "asyncnet")
SIZES = {
    "small": Workload(mailboxes=4, messages=10, files=4, pages=20),
    "large": Workload(mailboxes=24, messages=25, files=24, pages=200),
}
QUICK_SIZES = {
    "small": Workload(mailboxes=2, messages=5, files=2, pages=6, file_kib=64),
    "large": Workload(mailboxes=8, messages=10, files=8, pages=40, file_kib=128),
}
MODE_LABELS = {
    "sequential": "blocking stdlib, sequential",
    "threads": "blocking stdlib, thread pool",
    "asyncnet": "asyncnet, one event loop",
}


def client_sizes(quick: bool = False) -> dict[str, Workload]:
    """The two sizes measured (smaller with ``quick``)."""
    return dict(QUICK_SIZES if quick else SIZES)


def asyncnet_available() -> bool:
    """True when asyncnet's mail, FTP and web clients are installed (the asyncnet mode)."""
    return all(
        importlib.util.find_spec(f"asyncnet.{m}") is not None for m in ("mail", "ftp", "web")
    )


def _threads_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _workload(workload: Workload) -> list[str]:
    return ["--workload", json.dumps(asdict(workload))]


class _Servers:
    """The loopback servers' process for one workload size."""

    def __init__(self, python: str, root: Path, workload: Workload) -> None:
        self.process = subprocess.Popen(
            [python, "-m", "benchmarks.clientload", "serve", str(root), *_workload(workload)],
            cwd=PACKAGE_PARENT,  # python -m finds the benchmark in the working directory
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # blocks until the servers listen
        if not line:
            self.stop()
            raise RuntimeError("the client benchmark's servers did not start")
        self.ports: dict[str, int] = json.loads(line)

    def stop(self) -> None:
        """Close stdin (the servers' signal to stop) and wait for the process."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _one_run(
    python: str, mode: str, ports: dict[str, int], workload: Workload, out: Path, timeout: float
) -> dict[str, Any]:
    """One fresh client process; its JSON result plus the threads seen from outside."""
    argv = [python, "-m", "benchmarks.clientload", "run", mode, "--ports", json.dumps(ports)]
    argv += [*_workload(workload), "--out", str(out)]
    process = subprocess.Popen(
        argv, cwd=PACKAGE_PARENT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen, deadline = 0, time.monotonic() + timeout
    while process.poll() is None:  # sample the thread count while it works
        seen = max(seen, _threads_of(process.pid))
        if time.monotonic() > deadline:
            process.kill()
        time.sleep(0.002)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        tail = stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{mode} client run failed ({process.returncode}): {tail[0]}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["threads"] = max(result["threads"], seen)
    return result


def run_clients(
    *,
    sizes: dict[str, Workload] | None = None,
    modes: Sequence[str] = MODES,
    repeats: int = 3,
    concurrency: int | None = None,
    python: str = sys.executable,
    timeout: float = 300.0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure every mode at every size; JSON-ready results (medians and raw runs)."""
    say = progress or (lambda line: None)
    sizes = sizes or client_sizes()
    notes: list[str] = []
    if "asyncnet" in modes and not asyncnet_available():
        modes = [m for m in modes if m != "asyncnet"]
        notes.append("asyncnet mode skipped: asyncnet.mail / asyncnet.ftp / asyncnet.web missing")
    out: dict[str, Any] = {"sizes": {}, "repeats": repeats, "notes": notes}
    for size, workload in sizes.items():
        if concurrency is not None:
            workload = replace(workload, concurrency=concurrency)
        entry: dict[str, Any] = {"workload": asdict(workload), "jobs": workload.jobs(), "modes": {}}
        with tempfile.TemporaryDirectory(prefix="asyncnet-bench-clients-") as tmp:
            servers = _Servers(python, Path(tmp) / "served", workload)
            try:
                for mode in modes:
                    runs = []
                    for rep in range(repeats):
                        target = Path(tmp) / f"{mode}-{rep}"
                        runs.append(
                            _one_run(python, mode, servers.ports, workload, target, timeout)
                        )
                        say(f"clients {size} {mode} #{rep + 1}: {runs[-1]['wall_s']:.3f} s")
                    if runs[0].get("loop") == "uvloop" and not [n for n in notes if "libuv" in n]:
                        notes.append(
                            "asyncnet ran on uvloop: its thread count includes libuv's fixed pool"
                            " of 4 threads (ASYNCNET_NO_UVLOOP=1: the stdlib loop, 1 thread)"
                        )
                    entry["modes"][mode] = {
                        "label": MODE_LABELS[mode],
                        "wall_s": statistics.median(r["wall_s"] for r in runs),
                        "peak_rss_kib": max(r["peak_rss_kib"] for r in runs),
                        "rss_before_kib": statistics.median(r["rss_before_kib"] for r in runs),
                        "threads": max(r["threads"] for r in runs),
                        "bytes": runs[0]["bytes"],
                        "runs": runs,
                    }
            finally:
                servers.stop()
        read = {mode: m["bytes"] for mode, m in entry["modes"].items()}
        if len(set(read.values())) > 1:  # every mode must have done the same work
            notes.append(f"{size}: the modes read different byte counts: {read}")
        out["sizes"][size] = entry
    return out


def _rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for size, entry in results["sizes"].items():
        w = entry["workload"]
        what = (
            f"{size}: {w['mailboxes']}x{w['messages']} mail, {w['mailboxes']} sends, "
            f"{w['files']} files x {w['file_kib']} KiB, {w['pages']} pages"
        )
        for m in entry["modes"].values():
            rows.append(
                [
                    what,
                    m["label"],
                    f"{m['wall_s']:.3f}",
                    f"{m['peak_rss_kib'] / 1024:.1f}",
                    f"{(m['peak_rss_kib'] - m['rss_before_kib']) / 1024:.1f}",
                    str(m["threads"]),
                ]
            )
            what = ""
    return rows


_HEADER = ["workload", "clients", "wall s", "peak RSS MiB", "work MiB", "threads"]


def markdown_table(results: dict[str, Any]) -> str:
    """The comparison as a Markdown table (for the README)."""
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(results)]
    return "\n".join(lines)


def print_report(results: dict[str, Any]) -> None:
    """The comparison as a rich table on the terminal."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"client side: the same jobs, median of {results['repeats']} fresh processes "
        "(work MiB: peak RSS minus RSS after imports)",
        title_justify="left",
    )
    for i, name in enumerate(_HEADER):
        table.add_column(name, justify="left" if i < 2 else "right")
    for row in _rows(results):
        table.add_row(*row)
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)
    for note in results.get("notes", []):
        console.print(f"note: {note}")


def write_plot(results: dict[str, Any], path: Path) -> None:
    """Wall time, peak RSS and threads per mode, one group of bars per size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(results["sizes"])
    modes = [m for m in MODES if any(m in e["modes"] for e in results["sizes"].values())]
    fig, axes = plt.subplots(1, 3, figsize=(15, 5))
    width = 0.8 / max(1, len(modes))
    for ax, key, title, scale in (
        (axes[0], "wall_s", "wall time (s)", 1.0),
        (axes[1], "peak_rss_kib", "peak RSS (MiB)", 1 / 1024),
        (axes[2], "threads", "threads", 1.0),
    ):
        for k, mode in enumerate(modes):
            values = [results["sizes"][s]["modes"].get(mode, {}).get(key, 0) * scale for s in sizes]
            ax.bar(
                [i + k * width for i in range(len(sizes))], values, width, label=MODE_LABELS[mode]
            )
        ax.set_xticks([i + width * (len(modes) - 1) / 2 for i in range(len(sizes))])
        ax.set_xticklabels([f"{s} ({results['sizes'][s]['jobs']} jobs)" for s in sizes])
        ax.set_title(title)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("mail + FTP + HTTP clients on loopback: blocking stdlib vs asyncnet", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(results: dict[str, Any], markdown: bool, plot: Path | None) -> None:
    """The full bench's hook: table (and Markdown), plot next to the servers' plot."""
    try:
        print_report(results)
    except ImportError:
        print("(rich is not installed: see the JSON file)", file=sys.stderr)
    if markdown:
        print(markdown_table(results))
    if plot is not None:
        where = plot.with_name(f"{plot.stem}-clients{plot.suffix}")
        write_plot(results, where)
        print(f"plot: {where}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run only the client-side comparison."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.clients", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 1 repeat")
    parser.add_argument("--repeats", type=int, help="fresh processes per mode and size (3)")
    parser.add_argument("--concurrency", type=int, help="threads / tasks at once (16)")
    parser.add_argument("--mode", action="append", choices=MODES, help="repeatable (default all)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write the PNG plot here")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    if repeats < 1 or (args.concurrency is not None and args.concurrency < 1):
        parser.error("--repeats and --concurrency must be at least 1")
    results = run_clients(
        sizes=client_sizes(args.quick),
        modes=args.mode or MODES,
        repeats=repeats,
        concurrency=args.concurrency,
        progress=lambda line: print(line, flush=True),
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    report(results, args.markdown, None)
    if args.plot:
        write_plot(results, args.plot)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
