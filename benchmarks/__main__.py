"""``python -m benchmarks``: see :mod:`benchmarks`."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import clients
from .harness import IMPLEMENTATIONS, BenchConfig, run_bench
from .paths import TARGETS
from .report import (
    markdown_table,
    parse_points,
    pipelined_markdown_table,
    print_report,
    write_json,
    write_plot,
)
from .targets import TargetsError, load_targets


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write the table, the JSON file and the plot."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="asyncnet against threaded, forking and bare asyncio upper servers.",
    )
    parser.add_argument("--quick", action="store_true", help="1 repeat, short runs (< 2 min)")
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("bench-results.json"),
        help="where to write every raw number (default %(default)s)",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=Path("bench-results.png"),
        help="where to write the PNG plot (default %(default)s)",
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the plot (no matplotlib)")
    parser.add_argument(
        "--impl",
        action="append",
        choices=sorted(IMPLEMENTATIONS),
        metavar="NAME",
        help="implementation to run (repeatable; see --list)",
    )
    parser.add_argument("--points", type=parse_points, help="connection counts, e.g. 1,10,100,1000")
    parser.add_argument(
        "--memory-points",
        type=parse_points,
        help="idle connection counts for memory, e.g. 1000,10000",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory phase")
    parser.add_argument("--no-udp", action="store_true", help="skip the UDP phase")
    parser.add_argument(
        "--no-fairness",
        action="store_true",
        help="skip the fairness point (quiet client in a flood)",
    )
    parser.add_argument("--fairness-depth", type=int, help="flood lines in flight (default 2000)")
    parser.add_argument(
        "--no-pipelined",
        action="store_true",
        help="skip the pipelined point (1 KiB lines, 32 in flight, 10 connections)",
    )
    parser.add_argument("--repeats", type=int, help="runs per point (median reported)")
    parser.add_argument("--duration", type=float, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds before each run")
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="TAG=DIR",
        help="also run the selected asyncnet implementations from source tree DIR "
        "(a patched copy: before/after in one run)",
    )
    parser.add_argument(
        "--demos",
        type=Path,
        metavar="DIR",
        help="the folder holding the classic SockServTCP.py and SockServUDP.py "
        "(default: demos/ beside benchmarks/)",
    )
    parser.add_argument(
        "--targets",
        type=Path,
        default=TARGETS,
        metavar="FILE",
        help="the TOML file of targets the run is judged by (default: benchmarks/targets.toml)",
    )
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument(
        "--no-clients", action="store_true", help="skip the client-side comparison (mail/FTP/HTTP)"
    )
    parser.add_argument("--list", action="store_true", help="list the implementations")
    args = parser.parse_args(argv)
    if args.list:
        for name, impl in IMPLEMENTATIONS.items():
            print(f"{name:18} {impl.label}{'  -- ' + impl.note if impl.note else ''}")
        return 0
    overrides: dict[str, Any] = {}
    if args.impl:
        overrides["implementations"] = tuple(dict.fromkeys(args.impl))
    if args.points:
        overrides["points"] = args.points
    if args.memory_points:
        overrides["memory_points"] = args.memory_points
    if args.no_memory:
        overrides["memory_points"] = ()
    if args.no_udp:
        overrides["udp"] = False
    if args.no_fairness:
        overrides["fairness"] = False
    if args.no_pipelined:
        overrides["pipelined"] = False
    if args.fairness_depth is not None:
        if args.fairness_depth < 1:
            parser.error("--fairness-depth must be >= 1")
        overrides["fairness_depth"] = args.fairness_depth
    for key in ("repeats", "duration", "warmup"):
        value = getattr(args, key)
        if value is not None:
            if value <= 0:
                parser.error(f"--{key} must be > 0")
            overrides[key] = value
    trees = []
    for spec in args.tree:
        tag, sep, directory = spec.partition("=")
        if not sep or not tag or not (Path(directory) / "asyncnet").is_dir():
            parser.error(f"--tree wants TAG=DIR with DIR/asyncnet, not {spec!r}")
        trees.append((tag, Path(directory)))
    overrides["trees"] = tuple(trees)
    if args.demos is not None:
        if not (args.demos / "SockServTCP.py").is_file():
            parser.error(f"--demos wants the folder holding SockServTCP.py, not {args.demos}")
        overrides["demos_dir"] = args.demos.resolve()
    try:
        targets = load_targets(args.targets, known=IMPLEMENTATIONS)
    except TargetsError as exc:
        parser.error(str(exc))
    config = BenchConfig.quick(**overrides) if args.quick else BenchConfig(**overrides)
    if not args.no_plot:
        try:
            import matplotlib  # noqa: F401
            import rich  # noqa: F401
        except ImportError as exc:
            parser.error(f"{exc.name} is missing: pip install 'asyncnet[bench]'")

    # SIGTERM's default action skips every ``finally``: the servers started so far would
    # outlive the harness.  As SystemExit it unwinds, and they are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    started = time.monotonic()
    results = run_bench(config, progress=lambda line: print(line, flush=True), targets=targets)
    if not args.no_clients:
        results["clients"] = clients.run_clients(
            sizes=clients.client_sizes(args.quick),
            repeats=1 if args.quick else 3,
            progress=lambda line: print(line, flush=True),
        )
    results["meta"]["elapsed_s"] = round(time.monotonic() - started, 1)
    write_json(results, args.json)
    try:
        print_report(results)
    except ImportError:
        print("(rich is not installed: see the JSON file)", file=sys.stderr)
    if args.markdown:
        table = markdown_table(results)
        print(table)
        # Next to the JSON, so that the tables a README quotes are in the run's files.
        tables = [table]
        pipelined = pipelined_markdown_table(results)
        if pipelined:
            print(pipelined)
            tables.append(pipelined)
        if "clients" in results:
            tables.append(clients.markdown_table(results["clients"]))
        args.json.with_suffix(".md").write_text("\n\n".join(tables) + "\n")
    if not args.no_plot:
        write_plot(results, args.plot)
        print(f"plot: {args.plot}")
    if "clients" in results:
        clients.report(results["clients"], args.markdown, None if args.no_plot else args.plot)
    print(f"json: {args.json}  ({results['meta']['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
