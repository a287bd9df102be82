"""What importing asyncnet loads: the top level is lazy, the heavy libraries stay out.

``import asyncnet`` loads the errors and nothing else of asyncnet (no asyncio, no
servers); the names it re-exports load on first use and are the same objects as in
their modules.  A program that uses one part of asyncnet does not pay for the
libraries of the others (aiohttp, aioftp, aiosmtplib, aiosmtpd), and a demo's
``--help`` loads none of them.  Each check starts a fresh interpreter and reads its
``sys.modules`` at exit, so nothing imported by this test process can hide a
regression (``-X importtime`` would not do: it misses what ``importlib`` and
``runpy`` import).  Speed itself is measured in ``benchmarks/imports.py``,
never asserted here.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import asyncnet
import asyncnet.demos
from tests.helpers import ROOT

pytestmark = pytest.mark.slow

HEAVY = frozenset({"aiohttp", "aioftp", "aiosmtplib", "aiosmtpd"})
DEMOS = sorted(
    m.name for m in pkgutil.iter_modules(asyncnet.demos.__path__) if not m.name.startswith("_")
)

# Demos whose --help still loads its library: strict, so fixing one fails here until
# its name leaves this set.
NOT_YET_LEAN = frozenset({"mailbox"})


MARK = "MODULES="

# Prints sys.modules as the interpreter exits (after the demo's SystemExit too).
_AT_EXIT = (
    "import atexit, json, sys\n"
    f"atexit.register(lambda: print({MARK!r} + json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
)


def imported(
    code: str | None = None, *, demo: str | None = None, argv: tuple[str, ...] = ()
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``code`` (or ``-m asyncnet.demos.DEMO ARGV``) fresh; the result and its modules."""
    if demo is not None:  # runpy does what ``python -m`` does
        module = f"asyncnet.demos.{demo}"
        code = (
            "import runpy, sys\n"
            f"sys.argv = [{module!r}, *{list(argv)!r}]\n"
            f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
        )
    assert code is not None
    result = subprocess.run(
        [sys.executable, "-c", _AT_EXIT + code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    lines = [line for line in result.stderr.splitlines() if line.startswith(MARK)]
    assert lines, f"no module list from the child: {result.stderr[-2000:]}"
    return result, set(json.loads(lines[-1][len(MARK) :]))


def top_level(modules: set[str]) -> set[str]:
    """The top-level packages of ``modules`` (``aiohttp.web`` -> ``aiohttp``)."""
    return {name.partition(".")[0] for name in modules}


@pytest.mark.timeout(30)
def test_import_asyncnet_loads_only_the_errors() -> None:
    """``import asyncnet`` loads asyncnet.errors and no asyncio, servers or heavy library."""
    result, modules = imported("import asyncnet")
    assert result.returncode == 0, result.stderr
    assert "asyncnet.errors" in modules  # the probe does see asyncnet's own imports
    ours = {m for m in modules if m.startswith("asyncnet")}
    assert ours == {"asyncnet", "asyncnet.errors"}
    assert "asyncio" not in modules
    assert not top_level(modules) & HEAVY


# (module, the heavy libraries it must not load)
LEAN = [
    ("asyncnet.errors", HEAVY),
    ("asyncnet.text", HEAVY),
    ("asyncnet.byteorder", HEAVY),
    ("asyncnet.protocols", HEAVY),
    ("asyncnet.clients", HEAVY),
    ("asyncnet.servers", HEAVY),
    ("asyncnet.chat", HEAVY),
    ("asyncnet.dns", HEAVY),
    ("asyncnet.testing", HEAVY),
    ("asyncnet.creosote", HEAVY),
    ("asyncnet.pytest_plugin", HEAVY),
    ("asyncnet.mail", frozenset({"aiohttp", "aioftp"})),
    ("asyncnet.ftp", frozenset({"aiohttp", "aiosmtplib", "aiosmtpd"})),
    ("asyncnet.web", frozenset({"aioftp", "aiosmtplib", "aiosmtpd"})),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("module", "forbidden"), LEAN, ids=[m for m, _ in LEAN])
def test_module_loads_only_its_own_library(module: str, forbidden: frozenset[str]) -> None:
    """Importing one public module loads none of the other parts' libraries."""
    result, modules = imported(f"import {module}")
    assert result.returncode == 0, result.stderr
    assert module in modules
    assert not top_level(modules) & forbidden


@pytest.mark.timeout(30)
def test_first_use_loads_the_servers_without_heavy_libraries() -> None:
    """``from asyncnet import LineHandler, tcp_server`` loads the servers, still no heavy one."""
    result, modules = imported("from asyncnet import LineHandler, tcp_server")
    assert result.returncode == 0, result.stderr
    assert {"asyncnet.servers", "asyncnet._factories"} <= modules
    assert not top_level(modules) & HEAVY


@pytest.mark.timeout(30)
def test_demo_plumbing_loads_no_asyncio() -> None:
    """The module every demo imports first leaves asyncio and the servers to the demo."""
    result, modules = imported("import asyncnet.demos._cli")
    assert result.returncode == 0, result.stderr
    assert "asyncnet.demos._cli" in modules
    assert not {"asyncio", "ssl", "asyncnet.servers", "asyncnet._runner"} & modules


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name,
            marks=pytest.mark.xfail(strict=True, reason="imports its library at module top")
            if name in NOT_YET_LEAN
            else (),
        )
        for name in DEMOS
    ],
)
def test_demo_help_loads_no_heavy_library(name: str) -> None:
    """``python -m asyncnet.demos.NAME --help`` exits 0 with its usage, loading no heavy library."""
    result, modules = imported(demo=name, argv=("--help",))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m asyncnet.demos.{name}")
    assert not top_level(modules) & HEAVY, sorted(top_level(modules) & HEAVY)


def _type_checking_names() -> set[str]:
    """The names imported under ``if TYPE_CHECKING:`` in asyncnet/__init__.py."""
    tree = ast.parse((ROOT / "asyncnet" / "__init__.py").read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom):
                    names.update(alias.asname or alias.name for alias in statement.names)
    return names


def test_lazy_names_match_the_type_checking_imports() -> None:
    """Type checkers see exactly the lazy names; with the eager ones they make ``__all__``."""
    lazy = set(asyncnet._LAZY)
    assert _type_checking_names() == lazy
    eager = {name for name in asyncnet.__all__ if name not in lazy}
    assert eager
    assert all(name in vars(asyncnet) for name in eager)
    assert lazy <= set(asyncnet.__all__)
    assert len(asyncnet.__all__) == len(set(asyncnet.__all__))


@pytest.mark.parametrize("name", sorted(asyncnet._LAZY))
def test_lazy_name_is_the_object_of_its_module(name: str) -> None:
    """``asyncnet.X`` and ``from asyncnet import X`` give the defining module's object."""
    import importlib

    source = importlib.import_module(asyncnet._LAZY[name], "asyncnet")
    assert getattr(asyncnet, name) is getattr(source, name)
    namespace: dict[str, object] = {}
    exec(f"from asyncnet import {name}", namespace)
    assert namespace[name] is getattr(source, name)
    assert name in dir(asyncnet)


def test_unknown_name_is_an_attribute_error() -> None:
    """A misspelt name fails as for any module (AttributeError; ImportError in ``from``)."""
    with pytest.raises(AttributeError, match="module 'asyncnet' has no attribute 'LineHandlr'"):
        asyncnet.LineHandlr  # type: ignore[attr-defined]  # noqa: B018  (mypy sees the typo too)
    with pytest.raises(ImportError, match="cannot import name 'LineHandlr'"):
        exec("from asyncnet import LineHandlr", {})


@pytest.mark.timeout(30)
def test_star_import_and_dir_in_a_fresh_interpreter() -> None:
    """Before anything loaded, ``dir()`` lists every public name and ``*`` imports them all."""
    code = (
        "import asyncnet, sys\n"
        "missing = set(asyncnet.__all__) - set(dir(asyncnet))\n"
        "assert not missing, missing\n"
        "assert 'asyncnet.servers' not in sys.modules\n"
        "ns = {}\n"
        "exec('from asyncnet import *', ns)\n"
        "assert set(asyncnet.__all__) <= set(ns), set(asyncnet.__all__) - set(ns)\n"
        "from asyncnet import creosote, chat\n"  # submodules still import by name
        "assert creosote.__name__ == 'asyncnet.creosote' and chat.__name__ == 'asyncnet.chat'\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


@pytest.mark.timeout(60)
def test_import_benchmark_reports_and_judges(tmp_path: Path) -> None:
    """``python -m benchmarks.imports`` times, names what was loaded, judges the target."""
    out = tmp_path / "imports.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.imports",
            "--runs",
            "2",
            "--mode",
            "source",
            "--only",
            "import asyncnet.mail",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "import asyncnet.mail" in done.stdout
    assert "targets: 1 of 1 met" in done.stdout  # lean: no aiohttp, no aioftp
    (row,) = json.loads(out.read_text())
    assert row["label"] == "import asyncnet.mail"
    assert row["mode"] == "source"
    assert len(row["times_ms"]) == len(row["cpu_ms"]) == 2
    assert {"aiosmtplib", "aiosmtpd"} <= set(row["heavy"])  # it does see what loads
    assert row["verdict"] == "met"
