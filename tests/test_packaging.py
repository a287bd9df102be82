"""What the wheel holds, and type checkers see asyncnet in a user's project.

mypy follows neither setuptools' import-hook editable installs nor packages
without ``py.typed``.  These tests run ``mypy --strict`` on a user's file outside
the repository: against this checkout's editable install (the README's install),
and against a fresh virtual environment holding the wheel built from the sdist.
The wheel holds asyncnet alone: the benchmark (``benchmarks/``) runs from a checkout.
Nothing is downloaded: the build uses the setuptools already installed here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow

SKIP = [
    ".git",
    ".venv*",
    "site",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
]

USER_FILE = """
from asyncnet import LineClient, LineHandler, tcp_server


class Upper(LineHandler):
    def handle_line(self, line: str) -> str:
        return line.upper()


async def main() -> str:
    async with tcp_server(Upper, port=0) as server:
        async with await LineClient.connect(*server.address, timeout=5) as client:
            return await client.request("abc")
"""

TYPE_ERROR = """
from asyncnet import LineClient


async def main() -> int:
    async with await LineClient.connect("127.0.0.1", 9999) as client:
        return await client.request("abc")  # a str, not an int
"""


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def mypy(project: Path, python: str | Path) -> tuple[subprocess.CompletedProcess[str], ...]:
    """mypy --strict on a good and a bad user file in ``project``, for ``python``'s packages."""
    (project / "good.py").write_text(USER_FILE)
    (project / "bad.py").write_text(TYPE_ERROR)
    results = []
    for name in ("good.py", "bad.py"):
        results.append(
            run(
                sys.executable,
                "-m",
                "mypy",
                "--strict",
                "--no-incremental",
                "--python-executable",
                python,
                name,
                cwd=project,
            )
        )
    return tuple(results)


def assert_sees_asyncnet(
    good: subprocess.CompletedProcess[str], bad: subprocess.CompletedProcess[str]
) -> None:
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Cannot find implementation or library stub" not in bad.stdout
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert 'Incompatible return value type (got "str", expected "int")' in bad.stdout


def test_editable_install_is_visible_to_mypy(tmp_path: Path) -> None:
    """The checkout's own install (``pip install -e``) is a path mypy can follow."""
    finders = list(
        Path(sys.prefix).glob("lib/python*/site-packages/__editable___asyncnet*finder.py")
    )
    assert not finders, f"import-hook editable install, invisible to mypy: {finders}"
    assert_sees_asyncnet(*mypy(tmp_path, sys.executable))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from the sdist of a copy of this checkout (built once per module)."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    source = tmp_path / "source"  # a copy: building writes *.egg-info into the tree
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*SKIP))
    dist = tmp_path / "dist"
    built = run(
        sys.executable,
        "-m",
        "build",
        "--sdist",
        "--no-isolation",
        "--skip-dependency-check",
        "--outdir",
        dist,
        source,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr
    (sdist,) = dist.glob("asyncnet-*.tar.gz")
    made = run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-w",
        dist,
        sdist,
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    (whl,) = dist.glob("asyncnet-*.whl")
    return whl


def test_wheel_holds_asyncnet_and_no_benchmark(wheel: Path) -> None:
    """The benchmark stays in the checkout: no bench module, no benchmarks/ in the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {name.split("/")[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"asyncnet"}
    assert "asyncnet/py.typed" in names
    assert "asyncnet/demos/upper.py" in names  # the demos the benchmark runs do ship
    parts = {part.removesuffix(".py") for name in names for part in name.split("/")}
    assert not {p for p in parts if p.startswith("bench")}, sorted(parts)


def test_wheel_built_from_the_sdist_is_visible_to_mypy(wheel: Path, tmp_path: Path) -> None:
    """sdist -> wheel -> a fresh venv: py.typed travels all the way."""
    venv = tmp_path / "venv"
    made = run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--no-deps",
        "--no-index",
        wheel,
        cwd=tmp_path,
    )
    assert installed.returncode == 0, installed.stderr
    assert list(venv.glob("lib/python*/site-packages/asyncnet/py.typed"))
    project = tmp_path / "project"
    project.mkdir()
    assert_sees_asyncnet(*mypy(project, python))
