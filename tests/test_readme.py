"""The README's and docs' examples work pasted into an empty project.

Issue 9 items 5 and 6, issue 10 item 8.  A Python block preceded by
``<!-- readme-test: NAME.py -->`` is a whole file: it must pass ``mypy --strict``
outside the repository; ``<!-- readme-test: NAME.py run -->`` also runs it (exit
0, no traceback); the ones named ``test_*`` must pass under pytest in a project
with no configuration at all (no ``asyncio_mode``), with warnings as errors.
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
from asyncnet.clients.framed import FramedClient
from asyncnet.protocols.framing import ByteCount
from tests.helpers import ROOT

MARKED_BLOCK = re.compile(r"<!-- readme-test: (\S+\.py)( run)? -->\n```python\n(.*?)```", re.DOTALL)
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


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
    """Issue 10 item 8: a bad Content-Length gets an error reply, not a logged traceback."""
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
    """The "Writing a server" file imports cleanly: run_servers is under __main__."""
    server = load("upper_server.py")
    assert server.Upper().handle_line("abc") == "ABC"
    assert server.UpperDatagram().handle(b"abc", ("127.0.0.1", 1)) == b"ABC"
