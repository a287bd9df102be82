"""Where the benchmark finds what it runs, relative to this package.

The benchmark is never installed (the asyncnet wheel holds ``asyncnet`` only): it
runs from a checkout, so this package's parent is the directory that holds
``asyncnet/``, the classic ``demos/`` and ``benchmarks/`` itself.  The processes it
starts (``python -m benchmarks.loadgen`` and the rest) find the package there.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CLASSIC_DEMOS", "PACKAGE_PARENT", "TARGETS", "python_path"]

PACKAGE_PARENT = Path(__file__).resolve().parent.parent
CLASSIC_DEMOS = PACKAGE_PARENT / "demos"
"""The threaded ``socketserver`` originals (``SockServTCP.py``, ``SockServUDP.py``)."""
TARGETS = Path(__file__).resolve().parent / "targets.toml"
"""The goals the report marks met or missed."""


def python_path(*first: str | Path) -> str:
    """A ``PYTHONPATH`` value: ``first``, then this package's parent, then the caller's."""
    entries = [str(p) for p in first]
    entries.append(str(PACKAGE_PARENT))
    inherited = os.environ.get("PYTHONPATH")
    if inherited:
        entries.append(inherited)
    return os.pathsep.join(entries)
