"""``python -m asyncnet.demos.ftp`` as a real process: the embedded tour, --server, errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .ftp_servers import pyftpdlib_server
from .helpers import ROOT

pytestmark = pytest.mark.slow


def demo(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncnet.demos.ftp", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )


def test_embedded_demo_runs_every_step_and_checksums_match() -> None:
    result = demo("--big-mb", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "embedded aioftp server on 127.0.0.1:" in out
    assert "| Network programming in Python" in out  # retrlines
    assert "retrbinary with Writer" in out
    assert "resumed from " in out
    assert "resumed from 0 bytes" not in out
    assert "5 downloads at once on one loop: all checksums match" in out
    sums = {line.rsplit("sha256 ", 1)[1][:16] for line in out.splitlines() if "sha256 " in line}
    assert len(sums) == 1  # Writer copy, download, upload and resumed file are identical


def test_help_and_bad_flags() -> None:
    assert demo("--help").returncode == 0
    bad = demo("--no-such-flag")
    assert bad.returncode == 2
    assert demo("--server", "no-port-here").returncode == 2


def test_refused_server_is_one_line_and_exit_1() -> None:
    with socket.socket() as sock:  # bound, not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result = demo("--server", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "Connection refused" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_local_file_for_put_is_one_line() -> None:
    """Checked by argparse before connecting, as every demo checks a file flag: exit 2."""
    result = demo("--put", "/no/such/file.bin")
    assert result.returncode == 2
    assert result.stderr == (
        "python -m asyncnet.demos.ftp: error: argument --put:"
        " /no/such/file.bin: no such file (see --help)\n"
    )


async def test_server_mode_against_pyftpdlib_with_password_from_environment(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.bin").write_bytes(os.urandom(100_000))
    async with pyftpdlib_server(root, "pw-from-env") as (host, port):
        ok = demo(
            "--server",
            f"{host}:{port}",
            "--user",
            "guest",
            "--get",
            "hello.bin",
            cwd=tmp_path,
            FTP_PASSWORD="pw-from-env",
        )
        wrong = demo("--server", f"{host}:{port}", "--user", "guest", FTP_PASSWORD="nope")
        missing = demo(
            "--server",
            f"{host}:{port}",
            "--user",
            "guest",
            "--get",
            "absent.bin",
            cwd=tmp_path,
            FTP_PASSWORD="pw-from-env",
        )
    assert ok.returncode == 0, ok.stderr
    assert "hello.bin" in ok.stdout
    assert (tmp_path / "hello.bin").read_bytes() == (root / "hello.bin").read_bytes()
    assert wrong.returncode == 1
    assert "530" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert missing.returncode == 1
    assert "550" in missing.stderr
    assert missing.stderr.count("\n") == 1


async def test_tour_ftp_stop_prints_each_verb(capsys: pytest.CaptureFixture[str]) -> None:
    from asyncnet.demos.tour import ftp_stop

    await ftp_stop()
    out = capsys.readouterr().out
    assert "    | retrlines: one call per line" in out
    assert "storbinary: 1,048,576 bytes stored" in out
    assert "same bytes: True" in out
    assert "(True)" in out
    assert "MLSD listing: copy.bin, data.bin, notes.txt" in out
