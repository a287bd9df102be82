"""The C load generator (``benchmarks/cload/loadgen.c``): built on demand, Python as fallback.

    python -m benchmarks.cloadgen tcp --port P --connections 100 --duration 3
    python -m benchmarks.cloadgen pipelined --port P --connections 10 --inflight 32 --size 1024
    python -m benchmarks.cloadgen --build          # build (or find) it, print its path

The same command line and JSON as :mod:`benchmarks.loadgen`, so the harness can run
either.  ``tcp`` and ``pipelined`` go to the C program when a C compiler exists
(``$CC``, else ``cc``/``gcc``/``clang``): one thread, epoll, no allocation per
request, so that the generator is not what limits the fastest servers.  It is
compiled once into a cache directory (``$ASYNCNET_BENCH_CACHE``, else
``$XDG_CACHE_HOME/asyncnet-bench``, else ``~/.cache/asyncnet-bench``), keyed by a
hash of the source and the compiler.  Every other mode, or any mode when no
compiler exists or ``ASYNCNET_BENCH_GENERATOR=python`` is set, runs the Python
generator in this process.  The JSON always says which one ran: ``"generator"`` is
``"c"`` or ``"python"``, and ``"generator_note"`` why Python ran instead of C.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["C_MODES", "SOURCE", "BuildError", "build", "compiler", "main"]

SOURCE = Path(__file__).with_name("cload") / "loadgen.c"
C_MODES = ("tcp", "pipelined")
FLAGS = ("-O2", "-std=gnu11", "-Wall", "-Wextra")


class BuildError(RuntimeError):
    """No compiler, or the C source did not compile (the message says which)."""


def compiler() -> str | None:
    """The C compiler to use: ``$CC`` if set, else the first of cc, gcc, clang found."""
    chosen = os.environ.get("CC")
    if chosen:
        return shutil.which(chosen)
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


def cache_dir() -> Path:
    """Where built generators are kept."""
    explicit = os.environ.get("ASYNCNET_BENCH_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "asyncnet-bench"


def build(cc: str | None = None, into: Path | None = None, source: Path = SOURCE) -> Path:
    """The path of the program built from ``source`` (the generator by default),
    compiling it first if the cache lacks it."""
    cc = cc or compiler()
    if cc is None:
        raise BuildError("no C compiler found (set CC, or install gcc)")
    text = source.read_bytes()
    key = hashlib.sha256(text + b"\0" + cc.encode() + b"\0" + " ".join(FLAGS).encode())
    folder = into or cache_dir()
    target = folder / f"{source.stem}-{key.hexdigest()[:16]}"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    folder.mkdir(parents=True, exist_ok=True)
    # Compile beside the target and rename: a concurrent run never sees half a file.
    fd, scratch = tempfile.mkstemp(prefix=f".{source.stem}-", dir=folder)
    os.close(fd)
    try:
        done = subprocess.run(
            [cc, *FLAGS, "-o", scratch, str(source), "-lm"],
            capture_output=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", "replace").strip()[-1500:]
            raise BuildError(f"{cc} could not build {source.name}: {err}")
        os.chmod(scratch, 0o755)
        os.replace(scratch, target)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
    return target


def _python(argv: Sequence[str], note: str | None) -> int:
    """Run the Python generator in this process, marking its JSON as such."""
    from . import loadgen

    real_stdout = sys.stdout
    with tempfile.TemporaryFile(mode="w+") as captured:
        sys.stdout = captured
        try:
            status = loadgen.main(list(argv))
        finally:
            sys.stdout = real_stdout
        captured.seek(0)
        lines = captured.read().strip().splitlines()
    if status != 0 or not lines:
        return status
    result = json.loads(lines[-1])
    result["generator"] = "python"
    if note:
        result["generator_note"] = note
    print(json.dumps(result), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one load phase with the C generator where it can, else the Python one."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["-h"], ["--help"]) or not args:
        print(__doc__)
        return 0
    if args == ["--build"]:
        try:
            print(build())
        except BuildError as exc:
            print(f"cloadgen: {exc}", file=sys.stderr)
            return 1
        return 0
    if args[0] not in C_MODES:
        return _python(args, None)
    if os.environ.get("ASYNCNET_BENCH_GENERATOR", "auto") == "python":
        return _python(args, "ASYNCNET_BENCH_GENERATOR=python")
    try:
        binary = build()
    except (BuildError, OSError, subprocess.TimeoutExpired) as exc:
        return _python(args, f"C generator unavailable: {exc}")
    # A flag the C program does not know (--no-uvloop) means nothing to it.
    c_args = [a for a in args if a != "--no-uvloop"]
    done = subprocess.run([str(binary), *c_args], check=False)
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
