"""The targets a run is judged by: data in ``targets.toml``, read and checked here.

Each target reads one number of one implementation in one phase of the run and,
with ``vs``, divides it by the same number of another implementation, so that a
goal is a ratio measured within one run on one machine rather than an absolute
speed.  ``python -m benchmarks --targets FILE`` judges by another file; the format
is described at the top of ``targets.toml``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .paths import TARGETS

__all__ = [
    "METRICS",
    "OPS",
    "Target",
    "TargetsError",
    "evaluate_targets",
    "load_targets",
    "parse_targets",
]

_POINT = (
    "rps",
    "p50_us",
    "p90_us",
    "p99_us",
    "server_us_per_req",
    "server_cpu_pct",
    "gen_cpu_pct",
    "other_cpu_pct",
    "spread_pct",
    "gen_us_per_req",
)
METRICS: Mapping[str, tuple[str, ...]] = {
    "tcp": _POINT,
    "udp": _POINT,
    "pipelined": _POINT,
    "fairness": ("p50_us", "p99_us", "max_us", "rps", "flood_lines_per_s", "other_cpu_pct"),
    "memory": ("kib_per_conn", "base_kib", "loaded_kib", "connected"),
}
"""The numbers the harness records in each phase, which a target may read."""
OPS = (">=", "<=", "info")
"""``info`` shows the value without judging it."""
_KEYS = {
    "name",
    "text",
    "phase",
    "connections",
    "metric",
    "row",
    "vs",
    "inverse",
    "op",
    "threshold",
}


class TargetsError(ValueError):
    """A targets file that cannot be judged by; the message names the file and the target."""


@dataclass(frozen=True)
class Target:
    """One goal: ``row``'s ``metric`` in ``phase`` (over ``vs``'s), ``op`` ``threshold``."""

    name: str
    text: str
    phase: str
    metric: str
    row: str
    op: str
    connections: int | None = None
    vs: str | None = None
    inverse: bool = False
    threshold: float | None = None

    def _number(self, impls: Mapping[str, Any], name: str) -> float | None:
        try:
            point = impls[name][self.phase]
            if self.connections is not None:
                point = point[str(self.connections)]
            return float(point[self.metric])
        except (KeyError, TypeError):  # not run, not measured, or the phase was skipped
            return None

    def value(self, impls: Mapping[str, Any]) -> float | None:
        """The number this target judges, from a run's implementations (None: not measured)."""
        mine = self._number(impls, self.row)
        if self.vs is None:
            return mine
        theirs = self._number(impls, self.vs)
        if self.inverse:
            mine, theirs = theirs, mine
        return mine / theirs if mine is not None and theirs else None

    def judge(self, impls: Mapping[str, Any]) -> dict[str, Any]:
        """The report's row: the text, the goal, the value and met (None: not judged)."""
        value = self.value(impls)
        met: bool | None = None
        if value is not None and self.threshold is not None:
            met = value >= self.threshold if self.op == ">=" else value <= self.threshold
        return {
            "name": self.name,
            "target": self.text,
            "op": self.op,
            "goal": self.threshold,
            "value": value,
            "met": met,
        }


def _target(raw: Any, known: Collection[str] | None) -> Target:
    """One ``[[target]]`` table as a :class:`Target`; ``ValueError`` says what is wrong."""
    if not isinstance(raw, dict):
        raise ValueError("is not a table")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}")
    for key in ("name", "text", "phase", "metric", "row", "op"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ValueError(f"needs {key} = a non-empty string")
    phase, op = raw["phase"], raw["op"]
    if phase not in METRICS:
        raise ValueError(f"phase must be one of {', '.join(METRICS)}, not {phase!r}")
    if raw["metric"] not in METRICS[phase]:
        raise ValueError(
            f"a {phase} target reads one of {', '.join(METRICS[phase])}, not {raw['metric']!r}"
        )
    if op not in OPS:
        raise ValueError(f"op must be one of {', '.join(OPS)}, not {op!r}")
    connections = raw.get("connections")
    if phase in ("tcp", "memory"):
        if isinstance(connections, bool) or not isinstance(connections, int) or connections < 1:
            raise ValueError(f"a {phase} target needs connections = a positive integer")
    elif connections is not None:
        raise ValueError(f"a {phase} target has no connections")
    vs = raw.get("vs")
    if vs is not None and (not isinstance(vs, str) or not vs):
        raise ValueError("vs must be an implementation's name")
    inverse = raw.get("inverse", False)
    if not isinstance(inverse, bool):
        raise ValueError("inverse must be true or false")
    if inverse and vs is None:
        raise ValueError("inverse needs vs")
    for name in (raw["row"], vs):
        if name is not None and known is not None and name not in known:
            raise ValueError(f"no implementation {name!r} (see python -m benchmarks --list)")
    threshold = raw.get("threshold")
    if op == "info":
        if threshold is not None:
            raise ValueError('op = "info" takes no threshold')
    elif isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ValueError(f'op = "{op}" needs threshold = a number')
    return Target(
        name=raw["name"],
        text=raw["text"],
        phase=phase,
        metric=raw["metric"],
        row=raw["row"],
        op=op,
        connections=connections,
        vs=vs,
        inverse=inverse,
        threshold=None if threshold is None else float(threshold),
    )


def parse_targets(
    text: str, source: str = "targets", known: Collection[str] | None = None
) -> tuple[Target, ...]:
    """The targets in TOML ``text``; ``known``: the implementation names a target may use."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TargetsError(f"{source}: not valid TOML: {exc}") from None
    extra = sorted(set(data) - {"target"})
    if extra:
        raise TargetsError(f"{source}: unknown top-level key(s) {', '.join(extra)}")
    tables = data.get("target")
    if not isinstance(tables, list) or not tables:
        raise TargetsError(f"{source}: no [[target]] tables")
    targets: list[Target] = []
    seen: set[str] = set()
    for number, raw in enumerate(tables, 1):
        label = raw.get("name") if isinstance(raw, dict) else None
        where = f"{source}: target {number}" + (f" ({label})" if isinstance(label, str) else "")
        try:
            target = _target(raw, known)
        except ValueError as exc:
            raise TargetsError(f"{where}: {exc}") from None
        if target.name in seen:
            raise TargetsError(f"{where}: the name {target.name!r} is used twice")
        seen.add(target.name)
        targets.append(target)
    return tuple(targets)


def load_targets(path: Path = TARGETS, known: Collection[str] | None = None) -> tuple[Target, ...]:
    """The targets in the TOML file at ``path`` (this package's ``targets.toml`` by default)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetsError(f"cannot read the targets file {path}: {exc}") from None
    return parse_targets(text, str(path), known)


def evaluate_targets(
    impls: Mapping[str, Any], targets: Sequence[Target] | None = None
) -> list[dict[str, Any]]:
    """Each target judged on a run's implementations (``results["implementations"]``)."""
    if targets is None:
        targets = load_targets()
    return [target.judge(impls) for target in targets]
