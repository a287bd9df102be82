"""``python -m asyncnet.demos.ftp --serve DIR`` (a standing FTP server); ``--put`` into ``--dir``.

Each test runs the demo in a subprocess (on loopback, port 0), talks to it with
ftplib or curl, and stops it with SIGINT as Ctrl-C would.
"""

from __future__ import annotations

import asyncio
import ftplib
import io
import os
import re
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trustme

from asyncnet.ftp import FTPServer

from .helpers import ROOT

pytestmark = pytest.mark.timeout(60)

DEMO = ["-m", "asyncnet.demos.ftp"]
PASSWORD = "serve-secret"
READY = re.compile(
    r"^ftp: serving (?P<dir>.+) on ftp://127\.0\.0\.1:(?P<port>\d+)/ "
    r"for (?P<who>.+) \(Ctrl-C to stop\)$"
)


@asynccontextmanager
async def serving(
    *args: str, **env: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int, str]]:
    """Run ``--serve`` with ``args``; yield (process, port, who) once it says it is ready."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *DEMO,
        "--port",
        "0",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            line = (await proc.stdout.readline()).decode().rstrip("\n")
        ready = READY.match(line)
        if ready is None:
            assert proc.stderr is not None
            raise AssertionError(f"not ready: {line!r} {(await proc.stderr.read()).decode()!r}")
        yield proc, int(ready["port"]), ready["who"]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def ctrl_c(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    """SIGINT, then the exit status and stderr."""
    proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(20):
        _, stderr = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, stderr.decode()


def ftplib_session(port: int, user: str, password: str) -> ftplib.FTP:
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=10)
    ftp.login(user, password)
    return ftp


def refused_login(port: int, user: str, password: str) -> str:
    """The reply to a login that must fail (the test fails if it succeeds)."""
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=10)
    try:
        with pytest.raises(ftplib.error_perm) as refused:
            ftp.login(user, password)
        return str(refused.value)
    finally:
        ftp.close()


@pytest.mark.slow
async def test_serve_a_directory_to_a_user_until_ctrl_c(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_bytes(b"hello\n")

    def session(port: int) -> tuple[int | None, list[str], bytes]:
        ftp = ftplib_session(port, "bob", PASSWORD)
        try:
            ftp.storbinary("STOR up.bin", io.BytesIO(b"u" * 5000))
            got = bytearray()
            ftp.retrbinary("RETR hello.txt", got.extend)
            return ftp.size("up.bin"), sorted(ftp.nlst()), bytes(got)
        finally:
            ftp.close()

    async with serving(
        "--serve", str(tmp_path), "--user", "bob", ASYNCNET_FTP_PASSWORD=PASSWORD
    ) as (proc, port, who):
        assert who == "user bob"
        size, names, hello = await asyncio.to_thread(session, port)
        refused = await asyncio.to_thread(refused_login, port, "anonymous", "x@example.org")
        status, stderr = await ctrl_c(proc)
    assert (size, names, hello) == (5000, ["hello.txt", "up.bin"], b"hello\n")
    assert refused.startswith("530")
    assert status == 0, stderr
    assert "Traceback" not in stderr


async def test_anonymous_alone_serves_read_only(tmp_path: Path) -> None:
    (tmp_path / "pub.txt").write_bytes(b"public\n")

    def session(port: int) -> tuple[bytes, str]:
        ftp = ftplib_session(port, "anonymous", "guest@example.org")
        try:
            got = bytearray()
            ftp.retrbinary("RETR pub.txt", got.extend)
            with pytest.raises(ftplib.error_perm) as refused:
                ftp.storbinary("STOR new.txt", io.BytesIO(b"no"))
            return bytes(got), str(refused.value)
        finally:
            ftp.close()

    async with serving("--serve", str(tmp_path), "--anonymous") as (proc, port, who):
        assert who == "anonymous (read-only)"
        got, refused = await asyncio.to_thread(session, port)
        status, _ = await ctrl_c(proc)
    assert got == b"public\n"
    assert refused.startswith("550")
    assert not (tmp_path / "new.txt").exists()
    assert status == 0


@pytest.mark.slow
async def test_serve_explicit_ftps_with_cert_and_key(tmp_path: Path) -> None:
    """--cert/--key: FTP_TLS logs in and transfers; a login in the clear is refused."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "hello.txt").write_bytes(b"hello over TLS\n")
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    issued.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    client = ssl.create_default_context()
    ca.configure_trust(client)

    def session(port: int) -> bytes:
        ftp = ftplib.FTP_TLS(context=client)
        ftp.connect("127.0.0.1", port, timeout=10)
        try:
            ftp.login("bob", PASSWORD)
            ftp.prot_p()
            got = bytearray()
            ftp.retrbinary("RETR hello.txt", got.extend)
            return bytes(got)
        finally:
            ftp.close()

    async with serving(
        "--serve",
        str(served),
        "--user",
        "bob",
        "--cert",
        str(tmp_path / "cert.pem"),
        "--key",
        str(tmp_path / "key.pem"),
        ASYNCNET_FTP_PASSWORD=PASSWORD,
    ) as (proc, port, who):
        assert who == "user bob, explicit FTPS (AUTH TLS)"
        got = await asyncio.to_thread(session, port)
        clear = await asyncio.to_thread(refused_login, port, "bob", PASSWORD)
        status, stderr = await ctrl_c(proc)
    assert got == b"hello over TLS\n"
    assert clear.startswith("530 log in over TLS")
    assert status == 0, stderr


async def test_read_only_user(tmp_path: Path) -> None:
    def session(port: int) -> str:
        ftp = ftplib_session(port, "bob", PASSWORD)
        try:
            with pytest.raises(ftplib.error_perm) as refused:
                ftp.mkd("made")
            return str(refused.value)
        finally:
            ftp.close()

    async with serving(
        "--serve", str(tmp_path), "--user", "bob", "--read-only", ASYNCNET_FTP_PASSWORD=PASSWORD
    ) as (proc, port, _):
        refused = await asyncio.to_thread(session, port)
        await ctrl_c(proc)
    assert refused.startswith("550")


@pytest.mark.parametrize(
    ("args", "env", "status", "says"),
    [
        (["--serve", "DIR"], {}, 2, "--serve needs --user NAME, or --anonymous"),
        (["--serve", "DIR", "--user", "bob"], {}, 1, "set $ASYNCNET_FTP_PASSWORD"),
        (["--serve", "DIR", "--user", "bob"], {"ASYNCNET_FTP_PASSWORD": ""}, 1, "empty password"),
        (["--serve", "DIR/missing", "--anonymous"], {}, 2, "is not a directory"),
        (["--serve", "DIR", "--anonymous", "--host", "0.0.0.0"], {}, 2, "--all-interfaces"),
        (["--anonymous"], {}, 2, "go with --serve"),
        (["--port", "2000"], {}, 2, "go with --serve"),
        (["--serve", "DIR", "--server", "127.0.0.1:21", "--anonymous"], {}, 2, "one of them"),
        (["--serve", "DIR", "--anonymous", "--cert", "DIR/junk.pem"], {}, 1, "cannot load"),
        (["--serve", "DIR", "--anonymous", "--key", "DIR/junk.pem"], {}, 2, "--key goes with"),
        (["--cert", "DIR/junk.pem"], {}, 2, "go with --serve"),
    ],
)
def test_bad_serve_settings_are_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], status: int, says: str
) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    env = {"ASYNCNET_FTP_PASSWORD": "", **env} if env else {}
    base = {k: v for k, v in os.environ.items() if k != "ASYNCNET_FTP_PASSWORD"}
    done = subprocess.run(
        [sys.executable, *DEMO, *(a.replace("DIR", str(tmp_path)) for a in args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
        env={**base, **env},
    )
    assert done.returncode == status, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("python -m asyncnet.demos.ftp: error: ")
    assert says in done.stderr


async def test_a_busy_port_is_one_line(tmp_path: Path) -> None:
    async with FTPServer(tmp_path, anonymous=True) as other:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *DEMO,
            "--serve",
            str(tmp_path),
            "--anonymous",
            "--port",
            str(other.address[1]),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        async with asyncio.timeout(30):
            _, stderr = await proc.communicate()
    assert proc.returncode == 1
    assert stderr.decode().count("\n") == 1
    assert "already in use" in stderr.decode()


@pytest.mark.slow
async def test_put_uploads_into_dir(tmp_path: Path) -> None:
    """``--put FILE --dir D`` stores FILE in D (it used to land in the login directory)."""
    served = tmp_path / "served"
    (served / "incoming").mkdir(parents=True)
    local = tmp_path / "report.bin"
    local.write_bytes(os.urandom(20000))
    async with FTPServer(served, users={"guest": PASSWORD}) as server:
        host, port = server.address
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *DEMO,
            "--server",
            f"{host}:{port}",
            "--user",
            "guest",
            "--dir",
            "incoming",
            "--put",
            str(local),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "FTP_PASSWORD": PASSWORD},
        )
        async with asyncio.timeout(30):
            stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    assert (served / "incoming" / "report.bin").read_bytes() == local.read_bytes()
    assert not (served / "report.bin").exists()
    assert "stored 20,000 bytes as incoming/report.bin" in stdout.decode()
