"""The ftp demo's client flags against a real server: --tls (explicit FTPS) with
--cafile and --active, downloading and uploading into --dir; each misuse one line."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from asyncnet.ftp import FTPServer

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[1]


def demo(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncnet.demos.ftp", *args],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


@pytest.mark.slow
async def test_explicit_ftps_active_mode_with_a_private_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    data = os.urandom(300_000)
    (root / "in" / "data.bin").write_bytes(data)
    work = tmp_path / "work"
    work.mkdir()
    upload = work / "up.txt"
    upload.write_text("sent through the demo\n")
    async with FTPServer(root, users={"guest": "s3cret"}, tls=context) as server:
        host, port = server.address[:2]
        common = ["--server", f"{host}:{port}", "--user", "guest", "--dir", "in"]
        env = {"FTP_PASSWORD": "s3cret"}
        untrusted = await asyncio.to_thread(demo, *common, "--tls", cwd=work, env=env)
        ok = await asyncio.to_thread(
            demo, *common, "--tls", "--cafile", str(cafile), "--active",
            "--get", "data.bin", "--put", str(upload), cwd=work, env=env,
        )  # fmt: skip
    assert untrusted.returncode == 1
    assert "Traceback" not in untrusted.stderr
    assert "--cafile" in untrusted.stderr or "certificate" in untrusted.stderr
    assert ok.returncode == 0, ok.stderr
    assert (
        hashlib.sha256((work / "data.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
    )
    assert (root / "in" / "up.txt").read_text() == "sent through the demo\n"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--tls"], "go with --server or --serve"),
        (["--active"], "go with --server or --serve"),
        (["--serve", ".", "--anonymous", "--active"], "go with --server"),
        (["--server", "127.0.0.1:21", "--tls", "bogus"], "invalid choice"),
    ],
)
def test_client_flags_out_of_place_are_one_line(
    args: list[str], words: str, tmp_path: Path
) -> None:
    result = demo(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert words in result.stderr
    assert "Traceback" not in result.stderr
