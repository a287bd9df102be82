"""Client side: the blocking stdlib originals against asyncnet on one event loop.

The same mixed workload (N mailboxes x M messages over POP3, N SMTP sends, K FTP
files, P HTTP pages; :class:`~benchmarks.workload.Workload`) is done by

* ``sequential``: poplib, smtplib, ftplib and urllib.request, one job after another;
* ``threads``: the same calls in a ``ThreadPoolExecutor`` of ``concurrency`` (16) threads;
* ``asyncnet``: asyncnet's mail, FTP and web clients on one event loop, every job at
  once (``loop_concurrency``: 0; ``--loop-concurrency 16`` gives it the pool's limit),

against loopback servers running in a separate process
(``python -m benchmarks.clientload serve``), at each round-trip time of ``--rtt``
(0, 20 and 100 ms): a process of delaying proxies (:mod:`benchmarks.latency`) stands
in front of every server, FTP data connections included, and holds every chunk for
RTT/2 each way, so every command, reply and handshake costs what it would over a
network.  0 ms goes through the same proxies with no delay, so the columns differ by
the delay alone.  Every run is a fresh process; we report the median wall time over
the repeats, the peak RSS (and the RSS after imports, so the cost of the work is
visible apart from the cost of the libraries), and the most threads the process had
(sampled from outside and counted inside), and judge the targets at 100 ms.

    python -m benchmarks.clients --quick                # just this part
    python -m benchmarks.clients --quick --rtt 0,100    # other round-trip times
    python -m benchmarks                                # part of the full bench
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
    "RTTS_MS",
    "SIZES",
    "TARGETS",
    "client_sizes",
    "judge",
    "markdown_table",
    "parse_rtts",
    "print_report",
    "report",
    "run_clients",
    "write_plot",
]

MODES = ("sequential", "threads", "asyncnet")
RTTS_MS = (0.0, 20.0, 100.0)
"""The round-trip times measured by default, in milliseconds."""
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
TARGET_RTT_MS = 100.0
TARGETS: tuple[tuple[str, str, str, str, float], ...] = (
    # (text, metric, mode, reference mode, minimum ratio reference/mode)
    ("one loop vs sequential, wall time", "wall_s", "asyncnet", "sequential", 10.0),
    ("one loop vs the thread pool, wall time", "wall_s", "asyncnet", "threads", 1.5),
    ("one loop vs the thread pool, peak RSS", "peak_rss_kib", "asyncnet", "threads", 1.0),
)
"""Judged at 100 ms on the largest size run: how many times less the mode takes.

The RSS target is "lower than the pool": a ratio above 1.0 (equal is not met).
"""


def client_sizes(quick: bool = False) -> dict[str, Workload]:
    """The two sizes measured (smaller with ``quick``)."""
    return dict(QUICK_SIZES if quick else SIZES)


def parse_rtts(text: str) -> tuple[float, ...]:
    """``"0,20,100"`` as milliseconds; ``ValueError`` names what is wrong."""
    rtts: list[float] = []
    for part in text.split(","):
        try:
            ms = float(part)
        except ValueError:
            raise ValueError(f"--rtt wants milliseconds such as 0,20,100, not {text!r}") from None
        if not 0 <= ms <= 2000:
            raise ValueError(f"--rtt wants each round-trip time from 0 to 2000 ms, not {part}")
        rtts.append(ms)
    return tuple(dict.fromkeys(rtts))


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


class _Ported:
    """A helper process that prints its ports as one JSON line and runs until stdin closes."""

    def __init__(self, argv: list[str], what: str) -> None:
        self.process = subprocess.Popen(
            argv,
            cwd=PACKAGE_PARENT,  # python -m finds the benchmark in the working directory
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # blocks until it listens
        if not line:
            self.stop()
            raise RuntimeError(f"the client benchmark's {what} did not start")
        self.ports: dict[str, int] = json.loads(line)

    def stop(self) -> None:
        """Close stdin (the signal to stop) and wait for the process."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _servers(python: str, root: Path, workload: Workload) -> _Ported:
    argv = [python, "-m", "benchmarks.clientload", "serve", str(root), *_workload(workload)]
    return _Ported(argv, "servers")


def _proxies(python: str, ports: dict[str, int], rtt_ms: float) -> _Ported:
    argv = [python, "-m", "benchmarks.latency", "--rtt", str(rtt_ms), "--ports"]
    return _Ported([*argv, json.dumps(ports), "--ftp", "ftp"], "delaying proxies")


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


def _summary(mode: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "label": MODE_LABELS[mode],
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "peak_rss_kib": max(r["peak_rss_kib"] for r in runs),
        "rss_before_kib": statistics.median(r["rss_before_kib"] for r in runs),
        "threads": max(r["threads"] for r in runs),
        "bytes": runs[0]["bytes"],
        "runs": runs,
    }


def run_clients(
    *,
    sizes: dict[str, Workload] | None = None,
    modes: Sequence[str] = MODES,
    rtts_ms: Sequence[float] = RTTS_MS,
    repeats: int = 3,
    concurrency: int | None = None,
    loop_concurrency: int | None = None,
    python: str = sys.executable,
    timeout: float = 300.0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure every mode at every size and RTT; JSON-ready results (medians and raw runs).

    ``timeout`` bounds one client run at 0 ms; each job may take 40 round trips more.
    """
    say = progress or (lambda line: None)
    sizes = sizes or client_sizes()
    notes: list[str] = []
    if "asyncnet" in modes and not asyncnet_available():
        modes = [m for m in modes if m != "asyncnet"]
        notes.append("asyncnet mode skipped: asyncnet.mail / asyncnet.ftp / asyncnet.web missing")
    out: dict[str, Any] = {
        "sizes": {},
        "repeats": repeats,
        "rtts_ms": list(rtts_ms),
        "notes": notes,
    }
    for size, workload in sizes.items():
        if concurrency is not None:
            workload = replace(workload, concurrency=concurrency)
        if loop_concurrency is not None:
            workload = replace(workload, loop_concurrency=loop_concurrency)
        entry: dict[str, Any] = {"workload": asdict(workload), "jobs": workload.jobs(), "rtts": {}}
        with tempfile.TemporaryDirectory(prefix="asyncnet-bench-clients-") as tmp:
            servers = _servers(python, Path(tmp) / "served", workload)
            try:
                for rtt in rtts_ms:
                    proxies = _proxies(python, servers.ports, rtt)
                    limit = timeout + 40 * workload.jobs() * rtt / 1000
                    at: dict[str, Any] = {}
                    try:
                        for mode in modes:
                            runs = []
                            for rep in range(repeats):
                                target = Path(tmp) / f"{mode}-{rtt:g}-{rep}"
                                runs.append(
                                    _one_run(python, mode, proxies.ports, workload, target, limit)
                                )
                                say(
                                    f"clients {size} {rtt:g} ms {mode} #{rep + 1}: "
                                    f"{runs[-1]['wall_s']:.3f} s"
                                )
                            _note_uvloop(runs, notes)
                            at[mode] = _summary(mode, runs)
                    finally:
                        proxies.stop()
                    entry["rtts"][f"{rtt:g}"] = {"rtt_ms": rtt, "modes": at}
                    read = {mode: m["bytes"] for mode, m in at.items()}
                    if len(set(read.values())) > 1:  # every mode must have done the same work
                        notes.append(
                            f"{size} at {rtt:g} ms: the modes read different bytes: {read}"
                        )
            finally:
                servers.stop()
        out["sizes"][size] = entry
    out["targets"] = judge(out)
    return out


def _note_uvloop(runs: list[dict[str, Any]], notes: list[str]) -> None:
    if runs[0].get("loop") == "uvloop" and not [n for n in notes if "libuv" in n]:
        notes.append(
            "asyncnet ran on uvloop: its thread count includes libuv's fixed pool"
            " of 4 threads (ASYNCNET_NO_UVLOOP=1: the stdlib loop, 1 thread)"
        )


def judge(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target at 100 ms on the largest size run: its ratio and whether it was met."""
    verdicts: list[dict[str, Any]] = []
    size = next(reversed(results["sizes"]), None)
    at = None
    if size is not None:
        at = results["sizes"][size]["rtts"].get(f"{TARGET_RTT_MS:g}")
    for text, metric, mode, reference, minimum in TARGETS:
        verdict: dict[str, Any] = {
            "target": f"{text} at {TARGET_RTT_MS:g} ms: >= {minimum:g}x"
            if minimum != 1.0
            else f"{text} at {TARGET_RTT_MS:g} ms: lower",
            "size": size,
            "ratio": None,
            "met": None,
        }
        modes = at["modes"] if at else {}
        if mode in modes and reference in modes and modes[mode][metric]:
            ratio = modes[reference][metric] / modes[mode][metric]
            verdict["ratio"] = round(ratio, 3)
            verdict["met"] = ratio >= minimum if minimum != 1.0 else ratio > 1.0
        verdicts.append(verdict)
    return verdicts


def _describe(size: str, w: dict[str, Any]) -> str:
    what = (
        f"{size}: {w['mailboxes']}x{w['messages']} mail, {w['mailboxes']} sends, "
        f"{w['files']} files x {w['file_kib']} KiB, {w['pages']} pages"
    )
    limit = w.get("loop_concurrency", 0)
    return what + (f" (loop: {limit} at once)" if limit else "")


def _rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for size, entry in results["sizes"].items():
        what = _describe(size, entry["workload"])
        for key, at in entry["rtts"].items():
            rtt = key
            sequential = at["modes"].get("sequential", {}).get("wall_s")
            for m in at["modes"].values():
                speedup = f"{sequential / m['wall_s']:.1f}x" if sequential and m["wall_s"] else "-"
                rows.append(
                    [
                        what,
                        rtt,
                        m["label"],
                        f"{m['wall_s']:.3f}",
                        speedup,
                        f"{m['peak_rss_kib'] / 1024:.1f}",
                        f"{(m['peak_rss_kib'] - m['rss_before_kib']) / 1024:.1f}",
                        str(m["threads"]),
                    ]
                )
                what = rtt = ""
    return rows


_HEADER = [
    "workload",
    "RTT ms",
    "clients",
    "wall s",
    "vs sequential",
    "peak RSS MiB",
    "work MiB",
    "threads",
]
_LEFT = 3  # the first columns are text, the rest numbers


def _verdicts(results: dict[str, Any]) -> list[str]:
    lines = []
    for v in results.get("targets", []):
        if v["ratio"] is None:
            lines.append(f"- {v['target']}: not measured")
        else:
            mark = "met" if v["met"] else "MISSED"
            lines.append(f"- {v['target']} ({v['size']}): {v['ratio']:.2f}x, {mark}")
    return lines


def markdown_table(results: dict[str, Any]) -> str:
    """The comparison as a Markdown table, then the targets (for the README)."""
    align = ["---"] * _LEFT + ["---:"] * (len(_HEADER) - _LEFT)
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(results)]
    verdicts = _verdicts(results)
    if verdicts:
        lines += ["", *verdicts]
    return "\n".join(lines)


def print_report(results: dict[str, Any]) -> None:
    """The comparison as a rich table on the terminal, then the targets."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"client side: the same jobs at each round-trip time, median of "
        f"{results['repeats']} fresh processes (work MiB: peak RSS minus RSS after imports)",
        title_justify="left",
    )
    for i, name in enumerate(_HEADER):
        table.add_column(name, justify="left" if i < _LEFT else "right")
    for row in _rows(results):
        table.add_row(*row)
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)
    for line in _verdicts(results):
        console.print(line, markup=False)
    for note in results.get("notes", []):
        console.print(f"note: {note}", markup=False)


def write_plot(results: dict[str, Any], path: Path) -> None:
    """Wall time (log), peak RSS and threads against RTT: a line per mode and size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 5))
    styles = ["-", "--", ":", "-."]
    colours = {mode: f"C{k}" for k, mode in enumerate(MODES)}
    for s, (size, entry) in enumerate(results["sizes"].items()):
        points = sorted(entry["rtts"].values(), key=lambda at: at["rtt_ms"])
        for mode in MODES:
            xs = [at["rtt_ms"] for at in points if mode in at["modes"]]
            if not xs:
                continue
            for ax, key, scale in (
                (axes[0], "wall_s", 1.0),
                (axes[1], "peak_rss_kib", 1 / 1024),
                (axes[2], "threads", 1.0),
            ):
                ys = [at["modes"][mode][key] * scale for at in points if mode in at["modes"]]
                ax.plot(
                    xs,
                    ys,
                    styles[s % len(styles)],
                    marker="o",
                    color=colours[mode],
                    label=f"{MODE_LABELS[mode]} ({size}, {entry['jobs']} jobs)",
                )
    for ax, title in zip(axes, ("wall time (s, log)", "peak RSS (MiB)", "threads"), strict=True):
        ax.set_xlabel("round-trip time (ms)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle(
        "mail + FTP + HTTP clients through delaying proxies: blocking stdlib vs asyncnet",
        fontsize=10,
    )
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
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.clients",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 1 repeat")
    parser.add_argument(
        "--rtt",
        default=",".join(f"{ms:g}" for ms in RTTS_MS),
        metavar="MS,MS,...",
        help="round-trip times to measure at, in ms (default: %(default)s)",
    )
    parser.add_argument("--size", action="append", help="only this size (small, large)")
    parser.add_argument("--repeats", type=int, help="fresh processes per mode, size, RTT (3)")
    parser.add_argument("--concurrency", type=int, help="threads in the pool (16)")
    parser.add_argument(
        "--loop-concurrency", type=int, help="jobs at once on the event loop (0: all, the default)"
    )
    parser.add_argument("--mode", action="append", choices=MODES, help="repeatable (default all)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write the PNG plot here (needs matplotlib)")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    if repeats < 1 or (args.concurrency is not None and args.concurrency < 1):
        parser.error("--repeats and --concurrency must be at least 1")
    if args.loop_concurrency is not None and args.loop_concurrency < 0:
        parser.error("--loop-concurrency must be 0 (every job at once) or more")
    try:
        rtts = parse_rtts(args.rtt)
    except ValueError as exc:
        parser.error(str(exc))
    sizes = client_sizes(args.quick)
    for size in args.size or []:
        if size not in sizes:
            parser.error(f"--size must be one of {', '.join(sizes)}, not {size!r}")
    if args.size:
        sizes = {name: w for name, w in sizes.items() if name in args.size}
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        parser.error("--plot needs matplotlib: pip install 'asyncnet[bench]'")
    results = run_clients(
        sizes=sizes,
        modes=args.mode or MODES,
        rtts_ms=rtts,
        repeats=repeats,
        concurrency=args.concurrency,
        loop_concurrency=args.loop_concurrency,
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
