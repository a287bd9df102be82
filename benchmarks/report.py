"""Presenting a benchmark run: the terminal tables (rich), the JSON file, the PNG plot."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "markdown_table",
    "pipelined_markdown_table",
    "pipelined_rows",
    "print_report",
    "write_json",
    "write_plot",
]

GEN_BOUND_PCT = 90.0
"""A point where the generator used this much of its core was limited by the generator."""


def write_json(results: dict[str, Any], path: Path) -> None:
    """Every raw number, indented, to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def _points(results: dict[str, Any]) -> list[int]:
    return [int(p) for p in results["meta"]["config"]["points"]]


def _mem_points(results: dict[str, Any]) -> list[int]:
    return [int(p) for p in results["meta"]["config"]["memory_points"]]


def _rps(value: float) -> str:
    return f"{value / 1000:,.1f}k" if value >= 1000 else f"{value:,.0f}"


def _ms(us: float) -> str:
    return f"{us / 1000:.2f}" if us < 10_000 else f"{us / 1000:.0f}"


def _cell(point: dict[str, Any] | None) -> str:
    if not point:
        return "-"
    text = _rps(point["rps"])
    if point.get("spread_pct", 0) >= 0.5:
        text += f" ±{point['spread_pct'] / 2:.0f}%"
    if point.get("gen_cpu_pct", 0) >= GEN_BOUND_PCT:
        text += " g"
    connected = point.get("connected")
    served = point.get("served")
    if connected and served is not None and served < connected:
        text += f" ({served}/{connected} served)"
    return text


def summary_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The main table: one row per implementation."""
    points = _points(results)
    mem_points = _mem_points(results)
    ref = 100 if 100 in points else points[-1]
    big = points[-1]
    header = ["server"]
    header += [f"req/s @{p}" for p in points]
    header += [f"p50/p99 ms @{ref}", f"p99 ms @{big}", f"CPU µs/req @{big}"]
    header += [f"KiB/idle conn @{m:,}" for m in mem_points]
    header += ["UDP req/s"]
    rows = []
    for impl in results["implementations"].values():
        tcp = impl["tcp"]
        row = [impl["label"]]
        row += [_cell(tcp.get(str(p))) for p in points]
        at_ref, at_big = tcp.get(str(ref)), tcp.get(str(big))
        row.append(f"{_ms(at_ref['p50_us'])} / {_ms(at_ref['p99_us'])}" if at_ref else "-")
        row.append(_ms(at_big["p99_us"]) if at_big else "-")
        row.append(f"{at_big['server_us_per_req']:.1f}" if at_big else "-")
        for m in mem_points:
            mem = impl["memory"].get(str(m))
            if not mem:
                row.append("-")
            else:
                text = f"{mem['kib_per_conn']:.2f}"
                if mem["connected"] < m:
                    text += f" ({mem['connected']:,} conns)"
                row.append(text)
        row.append(_cell(impl["udp"]) if impl["udp"] else "-")
        rows.append(row)
    return header, rows


_GENERATOR_NAMES = {
    "c": "C (benchmarks/cload/loadgen.c)",
    "python": "Python (benchmarks/loadgen.py)",
}
_PHASES = ("tcp", "pipelined", "udp", "memory", "fairness")


def _phase_points(impl: dict[str, Any], phase: str) -> list[dict[str, Any]]:
    """The measured points (their runs, where a point has several) of one phase."""
    value = impl.get(phase)
    if not value:
        return []
    points = list(value.values()) if phase in ("tcp", "memory") else [value]
    return [run for point in points for run in (point.get("runs") or [point])]


def generator_lines(results: dict[str, Any]) -> list[str]:
    """Which load generator drove which kind of row, and why Python ran where C could not.

    ``load generator: C (...) for tcp, pipelined; Python (...) for udp, memory, fairness``
    (a kind driven by both in one run is named under both).
    """
    used: dict[str, list[str]] = {}
    reasons: list[str] = []
    for phase in _PHASES:
        for impl in results["implementations"].values():
            for run in _phase_points(impl, phase):
                name = run.get("generator")
                if name is None:
                    continue
                phases = used.setdefault(name, [])
                if phase not in phases:
                    phases.append(phase)
                note = run.get("generator_note")
                if note and note not in reasons:
                    reasons.append(note)
    if not used:
        return []
    parts = [
        f"{_GENERATOR_NAMES.get(name, name)} for {', '.join(phases)}"
        for name, phases in sorted(used.items())
    ]
    return ["load generator: " + "; ".join(parts), *(f"  ({reason})" for reason in reasons)]


def markdown_table(results: dict[str, Any]) -> str:
    """The summary table as Markdown, for the README."""
    header, rows = summary_rows(results)
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|---|" + "---:|" * (len(header) - 1))
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    generators = generator_lines(results)
    if generators:
        lines += ["", *generators]
    return "\n".join(lines)


def pipelined_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The pipelined point: one row per implementation measured there ([] if none)."""
    setup = results["meta"]["config"].get("pipelined") or {}
    header = [
        "server",
        f"lines/s ({setup.get('connections', '?')} conns x {setup.get('inflight', '?')} in flight)",
        "MiB/s",
        "CPU µs/line",
        "p99 ms",
    ]
    rows = []
    for impl in results["implementations"].values():
        point = impl.get("pipelined")
        if not point:
            continue
        size = setup.get("line_bytes", 0)
        rows.append(
            [
                impl["label"],
                _cell(point),
                f"{point['rps'] * size / (1 << 20):,.0f}" if size else "-",
                f"{point['server_us_per_req']:.2f}",
                _ms(point["p99_us"]),
            ]
        )
    return header, rows


def pipelined_markdown_table(results: dict[str, Any]) -> str:
    """The pipelined point as Markdown ("" when it was not measured)."""
    header, rows = pipelined_rows(results)
    if not rows:
        return ""
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|---|" + "---:|" * (len(header) - 1))
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _target_text(target: dict[str, Any]) -> tuple[str, str, str]:
    value = target["value"]
    shown = "-" if value is None else f"{value:.2f}"
    goal = "" if target["goal"] is None else f"{target['op']} {target['goal']}"
    met = {True: "met", False: "MISSED", None: "-"}[target["met"]]
    return shown, goal, met


def print_report(results: dict[str, Any], *, details: bool = True) -> None:
    """Summary table, per-point details, generator ceiling and targets, to the terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    meta = results["meta"]
    console.print(
        f"[bold]asyncnet bench[/] {meta['date']}: {meta['nproc']} CPUs ({meta['cpu_model']}), "
        f"Python {meta['python']}, uvloop {meta['uvloop']}, server cores "
        f"{meta['server_cores'] or 'any'}, generator cores {meta['generator_cores'] or 'any'}, "
        f"median of {meta['config']['repeats']} x {meta['config']['duration_s']} s"
    )
    for line in generator_lines(results):
        console.print(line)
    header, rows = summary_rows(results)
    table = Table(title="upper service, 64-byte lines, ping-pong", title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(
        "  ±: half the spread (max-min)/median over the repeats;  g: the generator used "
        f"≥{GEN_BOUND_PCT:.0f}% of its core (generator-bound: read CPU µs/req instead)"
    )
    if details:
        detail = Table(title="every point (medians)", title_justify="left")
        for name in (
            "server",
            "conns",
            "req/s",
            "spread",
            "p50 ms",
            "p99 ms",
            "server CPU",
            "µs/req",
            "gen CPU",
            "other CPU",
            "served",
        ):
            detail.add_column(name, justify="left" if name == "server" else "right")
        for impl_name, impl in results["implementations"].items():
            points = list(impl["tcp"].items())
            if impl["udp"]:
                points.append(("udp", impl["udp"]))
            for conns, p in points:
                detail.add_row(
                    impl_name,
                    conns,
                    f"{p['rps']:,.0f}",
                    f"{p['spread_pct']:.0f}%",
                    _ms(p["p50_us"]),
                    _ms(p["p99_us"]),
                    f"{p['server_cpu_pct']:.0f}%",
                    f"{p['server_us_per_req']:.1f}",
                    f"{p['gen_cpu_pct']:.0f}%",
                    f"{p.get('other_cpu_pct', 0):.0f}%",
                    f"{p.get('served', '-')}/{p.get('connected', '-')}" if "served" in p else "-",
                )
        console.print(detail)
    pipe_header, pipe_rows = pipelined_rows(results)
    if pipe_rows:
        setup = meta["config"].get("pipelined") or {}
        table = Table(
            title=f"pipelined: {setup.get('line_bytes', '?')}-byte lines, "
            f"{setup.get('inflight', '?')} in flight per connection",
            title_justify="left",
        )
        for i, name in enumerate(pipe_header):
            table.add_column(name, justify="left" if i == 0 else "right")
        for row in pipe_rows:
            table.add_row(*row)
        console.print(table)
    fair = [(name, impl.get("fairness")) for name, impl in results["implementations"].items()]
    if any(point for _, point in fair):
        table = Table(
            title="fairness: a quiet client's latency while another client floods",
            title_justify="left",
        )
        for name in ("server", "quiet p50 ms", "quiet p99 ms", "quiet max ms", "flood lines/s"):
            table.add_column(name, justify="left" if name == "server" else "right")
        for name, point in fair:
            if point:
                table.add_row(
                    name,
                    _ms(point["p50_us"]),
                    _ms(point["p99_us"]),
                    _ms(point["max_us"]),
                    f"{point['flood_lines_per_s']:,.0f}",
                )
        console.print(table)
    ceiling = results.get("generator_ceiling") or {}
    if ceiling:
        console.print(
            f"generator ceiling: {ceiling['rps']:,.0f} req/s against {ceiling['implementation']} "
            f"@{ceiling['connections']} (generator CPU {ceiling['gen_cpu_pct']:.0f}%, server CPU "
            f"{ceiling['server_cpu_pct']:.0f}%); at 100% of its core it would reach about "
            f"{ceiling['estimated_max_rps']:,.0f} req/s ({ceiling['gen_us_per_req']:.1f} µs/req)"
        )
    targets = Table(title="targets (ratios in this run)", title_justify="left")
    for name in ("target", "value", "goal", ""):
        targets.add_column(name, justify="left" if name == "target" else "right")
    for target in results.get("targets", []):
        targets.add_row(target["target"], *_target_text(target))
    console.print(targets)
    for note in results.get("notes", []):
        console.print(f"note: {note}")


def write_plot(results: dict[str, Any], path: Path) -> None:
    """req/s and p99 against connections per implementation, and KiB per idle connection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    impls = results["implementations"]
    meta = results["meta"]
    fig, (ax_rps, ax_p99, ax_mem) = plt.subplots(1, 3, figsize=(17, 6.5))
    colors = [plt.get_cmap("tab20")(k) for k in range(20)]
    markers = "os^vD<>ph*"
    for i, (name, impl) in enumerate(impls.items()):
        pts = sorted((int(c), p) for c, p in impl["tcp"].items())
        if not pts:
            continue
        xs = [c for c, _ in pts]
        style = {
            "color": colors[(2 * i) % 20 + (i // 10) % 2],
            "marker": markers[i % len(markers)],
            "linestyle": "-" if name.startswith("asyncnet") else "--",
            "label": impl["label"],
        }
        ax_rps.plot(xs, [p["rps"] for _, p in pts], **style)
        ax_p99.plot(xs, [p["p99_us"] / 1000 for _, p in pts], **style)
    ceiling = results.get("generator_ceiling") or {}
    if ceiling.get("estimated_max_rps"):
        ax_rps.axhline(
            ceiling["estimated_max_rps"],
            color="grey",
            linestyle=":",
            label="generator ceiling (est.)",
        )
    for ax, title, ylabel in (
        (ax_rps, "throughput", "requests / s"),
        (ax_p99, "p99 latency", "ms (log)"),
    ):
        ax.set_xscale("log")
        ax.set_xlabel("concurrent connections")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax_p99.set_yscale("log")
    fig.legend(
        *ax_rps.get_legend_handles_labels(), loc="lower center", ncol=5, fontsize=7, frameon=False
    )
    mem_points = _mem_points(results)
    names = [n for n, i in impls.items() if i["memory"]]
    width = 0.8 / max(1, len(mem_points))
    for k, m in enumerate(mem_points):
        values = [impls[n]["memory"].get(str(m), {}).get("kib_per_conn", 0.0) for n in names]
        ax_mem.bar(
            [i + k * width for i in range(len(names))], values, width, label=f"{m:,} connections"
        )
    ax_mem.set_xticks([i + width * (len(mem_points) - 1) / 2 for i in range(len(names))])
    ax_mem.set_xticklabels([impls[n]["label"] for n in names], rotation=35, ha="right", fontsize=7)
    ax_mem.set_ylabel("KiB")
    ax_mem.set_title("memory per idle connection")
    ax_mem.legend(fontsize=7)
    fig.suptitle(
        f"asyncnet bench {meta['date']} - {meta['nproc']} CPUs {meta['cpu_model']} - "
        "upper service, 64-byte lines, ping-pong",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_points(text: str) -> Sequence[int]:
    """``"1,10,100"`` -> ``(1, 10, 100)``; every value must be >= 1."""
    values = tuple(int(v) for v in text.split(",") if v.strip())
    if not values or min(values) < 1:
        raise ValueError(f"points must be positive integers, not {text!r}")
    return values
