"""``python -m benchmarks.cupper [PORT]``: the upper-case line service in C, for reference.

The C program (``benchmarks/cload/upper_server.c``: one thread, epoll, the replies
to one read in one ``write()``) is compiled on first use into the same cache as the
C load generator (see :mod:`benchmarks.cloadgen`), then this process becomes it
(``exec``), so the harness measures the PID it started.  It listens on 127.0.0.1
only and prints ``listening on tcp://127.0.0.1:PORT``.  Without a C compiler it says
so in one line and exits 1 (the harness skips the row, with the reason).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .cloadgen import BuildError, build

__all__ = ["SERVER_SOURCE", "main"]

SERVER_SOURCE = Path(__file__).with_name("cload") / "upper_server.c"


def main(argv: Sequence[str] | None = None) -> int:
    """Build the C server if needed and become it."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    port = args[0] if args else "0"
    if len(args) > 1 or not port.isdigit() or int(port) > 65535:
        print("cupper: usage: python -m benchmarks.cupper [PORT] (0-65535)", file=sys.stderr)
        return 2
    try:
        binary = build(source=SERVER_SOURCE)
    except (BuildError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"cupper: {exc}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    os.execv(binary, [str(binary), port])


if __name__ == "__main__":
    sys.exit(main())
