"""Real clients against the embedded FTP server: curl, ftplib and aioftp's own client.

curl runs as a subprocess (skipped when it is not installed), ftplib in a thread,
aioftp on the test's loop; the server is asyncnet's FTPServer on 127.0.0.1:0.
"""

from __future__ import annotations

import asyncio
import ftplib
import hashlib
import io
import os
import shutil
from pathlib import Path

import aioftp
import pytest

from asyncnet.ftp import FTPServer

pytestmark = pytest.mark.timeout(60)

USERS = {"guest": "s3cret"}
CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    served = tmp_path / "served"
    served.mkdir()
    (served / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (served / "notes.txt").write_text("one\ntwo\n")
    (served / "sub").mkdir()
    (served / "sub" / "inner.txt").write_text("inner\n")
    return served


async def curl(*args: str) -> tuple[int, bytes, str]:
    """Run curl (quiet, errors shown, with a time bound); (status, stdout, stderr)."""
    assert CURL is not None
    proc = await asyncio.create_subprocess_exec(
        CURL,
        "--silent",
        "--show-error",
        "--max-time",
        "30",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(40):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out, err.decode()


def url(server: FTPServer, path: str = "") -> str:
    host, port = server.address
    return f"ftp://guest:{USERS['guest']}@{host}:{port}/{path}"


@needs_curl
async def test_curl_lists_names_with_nlst(root: Path) -> None:
    """``curl -l``: NLST, the listing that failed with 502 before."""
    async with FTPServer(root, users=USERS) as server:
        status, out, err = await curl("-l", url(server))
        sub_status, sub_out, _ = await curl("-l", url(server, "sub/"))
    assert status == 0, err
    assert sorted(out.decode().split()) == ["big.bin", "notes.txt", "sub"]
    assert (sub_status, sub_out.decode().split()) == (0, ["inner.txt"])


@needs_curl
@pytest.mark.parametrize(
    "mode",
    [
        pytest.param([], id="passive (EPSV)"),
        pytest.param(["--disable-epsv"], id="passive (PASV)"),
        pytest.param(["--ftp-port", "-"], id="active (EPRT)"),
        pytest.param(["--ftp-port", "-", "--disable-eprt"], id="active (PORT)"),
    ],
)
async def test_curl_downloads_and_uploads(root: Path, tmp_path: Path, mode: list[str]) -> None:
    local = tmp_path / "local.bin"
    async with FTPServer(root, users=USERS) as server:
        status, _, err = await curl(*mode, "-o", str(local), url(server, "big.bin"))
        assert status == 0, err
        up_status, _, up_err = await curl(*mode, "-T", str(local), url(server, "sub/up.bin"))
        assert up_status == 0, up_err
        listed_status, listed, _ = await curl(*mode, "-l", url(server))
    assert local.read_bytes() == (root / "big.bin").read_bytes()
    assert (root / "sub" / "up.bin").read_bytes() == local.read_bytes()
    assert listed_status == 0
    assert b"big.bin" in listed


@needs_curl
async def test_curl_head_uses_size_and_mdtm(root: Path) -> None:
    """``curl -I``: Content-Length from SIZE, Last-Modified from MDTM."""
    async with FTPServer(root, users=USERS) as server:
        status, out, err = await curl("-I", url(server, "big.bin"))
    assert status == 0, err
    headers = out.decode()
    assert f"Content-Length: {3 * 1024 * 1024 + 17}" in headers
    assert "Last-Modified: " in headers


@needs_curl
async def test_curl_resumes_a_download_with_rest(root: Path, tmp_path: Path) -> None:
    """``curl -C -``: SIZE of the remote file, then REST and the rest of it."""
    whole = (root / "big.bin").read_bytes()
    local = tmp_path / "partial.bin"
    local.write_bytes(whole[:1000000])
    async with FTPServer(root, users=USERS) as server:
        status, _, err = await curl("-C", "-", "-o", str(local), url(server, "big.bin"))
    assert status == 0, err
    assert local.read_bytes() == whole


@needs_curl
async def test_curl_is_refused_a_link_out_of_the_root(root: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("secret\n")
    (root / "leak").symlink_to(tmp_path / "secret.txt")
    async with FTPServer(root, users=USERS) as server:
        status, out, err = await curl(url(server, "leak"))
    assert (status, out) == (78, b""), err  # curl's exit status for a 550 on RETR


async def test_ftplib_session(root: Path, tmp_path: Path) -> None:
    """stdlib ftplib: size(), mlsd(), nlst(), retrbinary, storbinary, passive then active."""

    def session() -> dict[str, object]:
        host, port = server.address
        ftp = ftplib.FTP()
        ftp.connect(host, port, timeout=10)
        try:
            ftp.login("guest", USERS["guest"])
            results: dict[str, object] = {"size": ftp.size("big.bin")}
            results["mlsd"] = {name: facts.get("size") for name, facts in ftp.mlsd()}
            results["nlst"] = sorted(ftp.nlst())
            for passive in (True, False):
                ftp.set_pasv(passive)
                got = hashlib.sha256()
                ftp.retrbinary("RETR big.bin", got.update)
                results[f"retr passive={passive}"] = got.hexdigest()
                ftp.storbinary(f"STOR sub/up-{passive}.bin", io.BytesIO(b"x" * 100000))
            ftp.quit()
            return results
        finally:
            ftp.close()

    async with FTPServer(root, users=USERS) as server:
        got = await asyncio.to_thread(session)
    size = (root / "big.bin").stat().st_size
    digest = hashlib.sha256((root / "big.bin").read_bytes()).hexdigest()
    assert got["size"] == size
    assert got["mlsd"] == {
        "big.bin": str(size),
        "notes.txt": "8",
        "sub": str((root / "sub").stat().st_size),
    }
    assert got["nlst"] == ["big.bin", "notes.txt", "sub"]
    assert got["retr passive=True"] == got["retr passive=False"] == digest
    for passive in (True, False):
        assert (root / "sub" / f"up-{passive}.bin").read_bytes() == b"x" * 100000


async def test_aioftp_client(root: Path, tmp_path: Path) -> None:
    """aioftp's own client: stat (MLST), list (MLSD), download, upload, rename, remove."""
    async with FTPServer(root, users=USERS) as server:
        host, port = server.address
        async with aioftp.Client.context(host, port, "guest", USERS["guest"]) as client:
            info = await client.stat("big.bin")
            names = sorted(str(path) for path, _ in await client.list())
            await client.download("big.bin", str(tmp_path / "got.bin"), write_into=True)
            await client.upload(tmp_path / "got.bin", "sub/again.bin", write_into=True)
            await client.rename("sub/again.bin", "sub/moved.bin")
            await client.remove("notes.txt")
    assert int(info["size"]) == (root / "big.bin").stat().st_size
    assert names == ["big.bin", "notes.txt", "sub"]
    assert (tmp_path / "got.bin").read_bytes() == (root / "big.bin").read_bytes()
    assert (root / "sub" / "moved.bin").read_bytes() == (root / "big.bin").read_bytes()
    assert not (root / "notes.txt").exists()
