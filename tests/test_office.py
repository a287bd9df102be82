"""The office demo: mail, FTP and web clients on one loop, and a clean Ctrl-C.

Each test runs ``python -m asyncnet.demos.office`` in a subprocess against the
servers it embeds (all on loopback, port 0) and checks what it leaves on disk.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from .helpers import program

ROOT = Path(__file__).resolve().parent.parent
OFFICE = ["-m", "asyncnet.demos.office", "--plain"]

pytestmark = pytest.mark.slow


def office(*args: str) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
    """Run the office with pipes; kill it if the test left it running."""
    return program(*OFFICE, *args)


async def lines_until(proc: asyncio.subprocess.Process, needle: str, timeout: float = 30) -> str:
    """Read stdout up to and including the line containing ``needle``."""
    assert proc.stdout is not None
    seen: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                assert proc.stderr is not None
                stderr = (await proc.stderr.read()).decode()
                raise AssertionError(f"office ended before {needle!r}: {seen} {stderr}")
            seen.append(raw.decode())
            if needle in seen[-1]:
                return "".join(seen)


async def test_every_job_finishes_and_the_downloads_are_complete(tmp_path: Path) -> None:
    """The whole office at small size: every job's line, whole files, logs in the bucket."""
    out = tmp_path / "downloads"
    args = [
        "--files",
        "3",
        "--size-kib",
        "96",
        "--messages",
        "3",
        "--pages",
        "4",
        "--out",
        str(out),
    ]
    async with office(*args) as proc:
        async with asyncio.timeout(40):
            stdout, stderr = await proc.communicate()
    text = stdout.decode()
    assert proc.returncode == 0, stderr.decode()
    assert "office: all done in" in text
    assert re.search(r"mail .* 3 sent, 3 read and parsed", text), text
    assert re.search(r"ftp .* 3 downloaded, 1 uploaded", text), text
    crawled = re.search(r"web .* index 200, (\d+) pages crawled, 0 broken", text)
    assert crawled, text
    assert int(crawled[1]) >= 5, text  # the index and the 4 pages
    answers = int(re.search(r"upper .* (\d+) answers over TCP and UDP", text)[1])  # type: ignore[index]
    assert answers >= 2
    records = int(re.search(r"creosote bucket: (\d+) log records", text)[1])  # type: ignore[index]
    assert records >= 4  # at least one per job
    files = sorted(p.name for p in out.iterdir())
    assert files == ["report1.bin", "report2.bin", "report3.bin"]
    assert all((out / name).stat().st_size == 96 * 1024 for name in files)


async def test_sigint_mid_transfer_exits_0_and_leaves_no_partial_files(tmp_path: Path) -> None:
    """Ctrl-C while the FTP downloads are under way (the server is throttled so they are)."""
    out = tmp_path / "downloads"
    args = ["--files", "2", "--size-kib", "4096", "--throttle", "256", "--out", str(out)]
    async with office(*args) as proc:
        await lines_until(proc, "FTP transfers under way")
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    assert "stopped cleanly" in stdout.decode()
    assert "Traceback" not in stderr.decode()
    left = list(out.iterdir())
    assert not [p for p in left if ".part" in p.name], left
    # 8 MiB at 256 KiB/s takes half a minute: nothing can have finished; and nothing
    # may sit under a final name half-written.
    assert all(p.stat().st_size == 4096 * 1024 for p in left), left


@pytest.mark.parametrize(
    ("argv", "status"), [(["--help"], 0), (["--bogus"], 2), (["--files", "0"], 2)]
)
def test_cli_conventions(argv: list[str], status: int) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "asyncnet.demos.office", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr
    if status == 2:  # the demos' convention: one line naming the problem
        assert done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith("python -m asyncnet.demos.office: error: ")


def test_missing_output_directory_parent_is_one_line(tmp_path: Path) -> None:
    """An --out that cannot be created: one line saying so, exit 1, no traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    done = subprocess.run(
        [sys.executable, *OFFICE, "--out", str(blocker / "sub")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("office: "), done.stderr
