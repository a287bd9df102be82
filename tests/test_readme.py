"""The README is a landing page, and its and the docs' examples work pasted into an empty project.

A Python block preceded by ``<!-- readme-test: NAME.py -->`` is a whole file: it must
pass ``mypy --strict`` outside the repository; ``<!-- readme-test: NAME.py run -->``
also runs it (exit 0, no traceback); the ones named ``test_*`` must pass under pytest
in a project with no configuration at all (no ``asyncio_mode``), with warnings as
errors.
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from asyncnet import tcp_server
from asyncnet.clients import FramedClient
from asyncnet.protocols import ByteCount
from tests.helpers import ROOT

MARKED_BLOCK = re.compile(r"<!-- readme-test: (\S+\.py)( run)? -->\n```python\n(.*?)```", re.DOTALL)
README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").rglob("*.md"))]


def marked_blocks() -> list[tuple[str, bool, str]]:
    """(file name, runnable, code) for every marked block of the README and docs/."""
    found = []
    for document in DOCUMENTS:
        for name, run, code in MARKED_BLOCK.findall(document.read_text(encoding="utf-8")):
            found.append((name, bool(run), code))
    names = [name for name, _, _ in found]
    assert len(names) == len(set(names)), f"two marked blocks share a file name: {names}"
    return found


def readme_files() -> dict[str, str]:
    """Every marked block, by its file name."""
    blocks = {name: code for name, _, code in marked_blocks()}
    assert {"upper_server.py", "upload.py", "test_upper.py"} <= set(blocks), sorted(blocks)
    return blocks


def load(name: str) -> ModuleType:
    """Execute one README block as a module (not as __main__: nothing starts serving)."""
    module = ModuleType(name.removesuffix(".py"))
    exec(compile(readme_files()[name], f"README.md:{name}", "exec"), module.__dict__)
    return module


@pytest.mark.slow
def test_readme_examples_pass_mypy_strict_outside_the_repo(tmp_path: Path) -> None:
    """Each marked block type-checks as a user's file, against the installed asyncnet."""
    for name, code in readme_files().items():
        (tmp_path / name).write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *sorted(readme_files())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name, run, _ in marked_blocks() if run])
def test_runnable_examples_run(name: str, tmp_path: Path) -> None:
    """Each example marked ``run`` runs to completion outside the repository."""
    (tmp_path / name).write_text(readme_files()[name], encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.strip()  # every example shows something


@pytest.mark.slow
def test_readme_testing_example_passes_in_an_empty_project(pytester: pytest.Pytester) -> None:
    """The "Testing your handlers" file, alone in a project: no ini, no conftest,
    no asyncio_mode; the plugin's fixtures come from the entry point."""
    pytester.makepyfile(test_upper=readme_files()["test_upper.py"])
    result = pytester.runpytest_subprocess("-W", "error", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


@pytest.mark.slow
def test_plugin_fails_a_test_that_leaves_loopback(pytester: pytest.Pytester) -> None:
    """The ``loopback_only`` fixture turns a non-loopback connect into a failure."""
    pytester.makepyfile(
        test_escape="""
        import socket

        def test_escape(loopback_only):
            with socket.socket() as sock:
                try:
                    sock.connect(("192.0.2.1", 9))  # TEST-NET-1, never routed
                except OSError:
                    pass  # swallowed: the fixture still fails the test
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)  # the call passed; the teardown fails it
    result.stdout.fnmatch_lines(["*non-loopback traffic was attempted*192.0.2.1*"])


def test_plugin_is_registered_once(pytestconfig: pytest.Config) -> None:
    """The entry point loads the plugin; the suite's conftest does not register it again."""
    manager = pytestconfig.pluginmanager
    plugins = [
        p for p in manager.get_plugins() if getattr(p, "__name__", "").startswith("asyncnet")
    ]
    assert [p.__name__ for p in plugins] == ["asyncnet.pytest_plugin"]


@pytest.mark.parametrize("length", [b"-5", b"abc", b"", b"1e3", b" 5 5"])
async def test_readme_upload_example_refuses_a_bad_content_length(
    length: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """The framing page's upload example: a bad Content-Length gets an error reply,
    not a logged traceback."""
    upload = load("upload.py")
    with caplog.at_level(logging.WARNING, logger="asyncnet"):
        async with tcp_server(upload.Upload, port=0) as server:
            client = await FramedClient.connect(*server.address, terminator=b"\r\n", timeout=5)
            async with client:
                await client.send_frame(b"Content-Length: " + length)
                await client.send_frame(b"")
                assert await client.read_frame() == b"error: bad Content-Length"
                assert await client.read_frame() is None  # then the connection closes
        assert server.stats.handler_errors == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_readme_upload_example_reads_a_body() -> None:
    """The same example with a good header: exactly Content-Length bytes are read."""
    upload = load("upload.py")
    async with tcp_server(upload.Upload, port=0) as server:
        client = await FramedClient.connect(*server.address, terminator=b"\r\n", timeout=5)
        async with client, asyncio.timeout(5):
            await client.send_frame(b"Content-Length: 5")
            await client.send_frame(b"")
            await client.send_frame(b"hello", ByteCount(5))
            assert await client.read_frame() == b"got 5 bytes"


def test_readme_server_example_builds_its_servers_without_starting_them() -> None:
    """The README's embedding file imports cleanly: main() only runs under __main__."""
    server = load("upper_server.py")
    assert server.Upper().handle_line("abc") == "ABC"
    assert server.UpperDatagram().handle(b"abc", ("127.0.0.1", 1)) == b"ABC"


def readme() -> str:
    return README.read_text(encoding="utf-8")


def test_readme_is_a_landing_page() -> None:
    """About 150 lines: the two commands first, then the demos, one embedding and one
    test example, and links; everything else lives in docs/."""
    text = readme()
    assert len(text.splitlines()) <= 160, len(text.splitlines())
    first_block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    assert first_block.splitlines() == [
        "make demo    # creates .venv, installs asyncnet, runs the demo tour against local servers",
        "make test    # creates .venv, installs the dev extras, runs the whole test suite",
    ]
    assert text.index("make demo") < text.index("## ")  # before any section
    assert "make test` takes" in text  # how long the suite runs, said up front
    assert "make test-quick" in text
    sections = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert sections == [
        "Demos",
        "Embedding: a server inside your asyncio program",
        "Testing your handlers",
        "Documentation",
    ]


def test_readme_demo_table_names_every_demo() -> None:
    """Each ``python -m asyncnet.demos.NAME`` command has a row, with its page."""
    demos = sorted(
        path.stem
        for path in (ROOT / "asyncnet" / "demos").glob("*.py")
        if not path.stem.startswith("_")
    )
    text = readme()
    for name in demos:
        assert f"| `python -m asyncnet.demos.{name}" in text, name
        assert f"(docs/demos/{name}.md)" in text, name


def test_readme_links_point_at_files_that_exist() -> None:
    """Every relative link of the README opens a file of the repository."""
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme())
    relative = [target for target in targets if "://" not in target]
    assert relative
    for target in relative:
        assert (ROOT / target).exists(), target


def test_readme_links_every_guide_page() -> None:
    """The landing page's Documentation section reaches every page of docs/ itself."""
    documentation = readme().split("## Documentation", 1)[1]
    pages = sorted(path.name for path in (ROOT / "docs").glob("*.md"))
    for name in pages:
        assert f"(docs/{name})" in documentation, name
    assert "(docs/api/index.md)" in documentation
