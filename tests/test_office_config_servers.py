"""The office pointed at real servers by ``--config office.toml``.

asyncnet's own servers run as separate processes (the mailserver, ``ftp --serve`` and
web demos); the independent ones are those the suite already starts: Dovecot (POP3
over STLS with a trustme CA as cafile), Twisted's ESMTP (STARTTLS, AUTH), pyftpdlib
(active mode), vsftpd (explicit FTPS with a cafile) and nginx, each skipped with a
reason where it is not installed.  The FTP progress bar's total comes from the
server's answers and is never run past.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trustme

from asyncnet.demos.office import Board, Job, ftp_job, sample_pages
from asyncnet.ftp import FTPServer

from .ftp_servers import VSFTPD, pyftpdlib_server, vsftpd_server
from .helpers import ROOT
from .pop3_dovecot import DOVECOT, MESSAGES, dovecot_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

PASSWORD = os.urandom(8).hex()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def cafile(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@asynccontextmanager
async def serving(*args: str, ready: str, env: dict[str, str]) -> AsyncIterator[re.Match[str]]:
    """``python -m ARGS`` until its ready line matches ``ready``; then Ctrl-C, by PID."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
    )
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode()
        match = re.search(ready, line)
        if match is None:
            pytest.fail(f"{args[0]} did not start: {line!r} {(await proc.stderr.read())!r}")
        yield match
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(10):
                    await proc.communicate()
            except TimeoutError:
                proc.kill()
                await proc.communicate()


async def office(config: Path, out: Path, *args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """The office with ``--config``; its exit status, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asyncnet.demos.office",
        "--plain",
        "--config",
        str(config),
        "--out",
        str(out),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, **env},
    )
    try:
        async with asyncio.timeout(60):
            stdout, stderr = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, stdout.decode(), stderr.decode()


def files(root: Path, count: int, size: int) -> dict[str, bytes]:
    """``count`` files of random bytes in ``root``; their contents by name."""
    root.mkdir(parents=True, exist_ok=True)
    made = {f"report{n}.bin": os.urandom(size) for n in range(1, count + 1)}
    for name, data in made.items():
        (root / name).write_bytes(data)
    return made


def summary(stdout: str, job: str) -> str:
    """The summary's line for ``job``."""
    match = re.search(rf"^  {job} +[\d.]+ s  (.*)$", stdout, re.MULTILINE)
    assert match, stdout
    return match[1]


@pytest.mark.parametrize("mode", ["passive", "active"])
async def test_own_servers_as_separate_processes(tmp_path: Path, mode: str) -> None:
    """The mailserver, ftp --serve and web demos in their own processes, named by one
    config: mail sent and read back (CRAM-MD5, the best login without TLS), files
    downloaded byte-exact and uploaded under their final names, the site crawled."""
    served, site, outbox, out = (tmp_path / d for d in ("served", "site", "outbox", "out"))
    originals = files(served, 2, 300 * 1024)
    (served / "incoming").mkdir()
    upload = files(outbox, 1, 100 * 1024)
    sample_pages(site, 4)
    env = {"ASYNCNET_MAIL_PASSWORD": PASSWORD, "ASYNCNET_FTP_PASSWORD": PASSWORD}
    mailserver = ("asyncnet.demos.mailserver", "--port", "0", "--maildir", str(tmp_path / "md"))
    ftpd = ("asyncnet.demos.ftp", "--serve", str(served), "--port", "0", "--user", "office")
    web = ("asyncnet.demos.web", str(site), "--port", "0")
    async with (
        serving(*mailserver, ready=r"SMTP on 127.0.0.1:(\d+), POP3 on 127.0.0.1:(\d+)", env=env)
        as mail,
        serving(*ftpd, ready=r"ftp://127.0.0.1:(\d+)/", env=env) as ftp,
        serving(*web, ready=r"(http://127.0.0.1:\d+/)", env=env) as http,
    ):  # fmt: skip
        config = tmp_path / "office.toml"
        config.write_text(
            f"""
[smtp]
host = "127.0.0.1"
port = {mail[1]}
from = "office@localhost"
to = ["demo@localhost"]

[pop3]
host = "127.0.0.1"
port = {mail[2]}
user = "demo"
password_env = "OFFICE_POP3_PASSWORD"
tls = "none"

[ftp]
host = "127.0.0.1"
port = {ftp[1]}
user = "office"
password_env = "OFFICE_FTP_PASSWORD"
mode = "{mode}"
download = {list(originals)}
upload = "outbox/report1.bin"
upload_dir = "incoming"

[http]
url = "{http[1]}"
"""
        )
        passwords = {"OFFICE_POP3_PASSWORD": PASSWORD, "OFFICE_FTP_PASSWORD": PASSWORD}
        status, stdout, stderr = await office(config, out, "--messages", "3", env=passwords)
    assert status == 0, stderr
    assert f"smtp 127.0.0.1:{mail[1]}, pop3 127.0.0.1:{mail[2]}, ftp 127.0.0.1:{ftp[1]}" in stdout
    assert summary(stdout, "mail") == "3 sent, 3 read and parsed"
    assert summary(stdout, "ftp") == "2 downloaded, 1 uploaded"
    assert summary(stdout, "web") == "index 200, 6 pages crawled, 0 broken"  # / and index.html
    assert {p.name: p.read_bytes() for p in out.iterdir()} == originals
    assert (served / "incoming" / "report1.bin").read_bytes() == upload["report1.bin"]
    assert not list((served / "incoming").glob("*.part"))


@pytest.mark.skipif(
    DOVECOT is None, reason="dovecot is not installed (apt-get install dovecot-pop3d)"
)
async def test_dovecot_over_stls_with_a_cafile(
    tmp_path: Path, ca: trustme.CA, cafile: Path
) -> None:
    """POP3 against Dovecot: STLS verified with the config's cafile, SASL PLAIN, every
    message read; the same config without the cafile fails on the certificate."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    config = tmp_path / "office.toml"
    async with dovecot_server(tmp_path / "cert.pem", tmp_path / "key.pem") as port:
        table = f"""
[pop3]
host = "127.0.0.1"
port = {port}
user = "alice"
password_env = "DOVECOT_PASSWORD"
tls = "stls"
auth = "plain"
"""
        config.write_text(table + 'cafile = "ca.pem"\n')
        env = {"DOVECOT_PASSWORD": "secret"}
        status, stdout, stderr = await office(config, tmp_path / "out", env=env)
        config.write_text(table)
        untrusted = await office(config, tmp_path / "out", env=env)
    assert status == 0, stderr
    assert summary(stdout, "mail") == f"{len(MESSAGES)} read and parsed"
    assert untrusted[0] == 1
    assert "certificate" in untrusted[2].lower(), untrusted[2]
    assert untrusted[2].count("\n") == 1, untrusted[2]


async def test_twisted_esmtp_over_starttls_with_auth(
    tmp_path: Path, ca: trustme.CA, cafile: Path
) -> None:
    """SMTP against Twisted's ESMTP: STARTTLS verified with the cafile, then AUTH as alice
    (Twisted refuses senders that did not log in, so each copy proves AUTH happened)."""
    pytest.importorskip("twisted.mail.smtp", reason="Twisted is not installed")
    from .test_sendmail_twisted import copies, twisted_smtp

    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    stored = tmp_path / "stored"
    stored.mkdir()
    tls = ["--tls", str(tmp_path / "server.pem"), str(tmp_path / "server.key")]
    async with twisted_smtp(str(stored), *tls) as port:
        config = tmp_path / "office.toml"
        config.write_text(
            f"""
[smtp]
host = "127.0.0.1"
port = {port}
user = "alice"
password_env = "SMTP_PASSWORD"
tls = "starttls"
cafile = "ca.pem"
from = "alice@example.org"
to = ["bob@example.org"]
"""
        )
        env = {"SMTP_PASSWORD": "secret"}
        status, stdout, stderr = await office(config, tmp_path / "out", "--messages", "2", env=env)
    assert status == 0, stderr
    assert summary(stdout, "mail") == "2 sent"
    received = copies(stored)
    assert len(received) == 2
    for envelope, data in received:
        assert (envelope["user"], envelope["tls"], envelope["rcpt"]) == (
            "alice",
            True,
            "bob@example.org",
        )
        assert b"Subject: office memo" in data


async def test_pyftpdlib_in_active_mode(tmp_path: Path) -> None:
    """FTP against pyftpdlib with mode = "active" (EPRT): downloads and an upload."""
    pytest.importorskip("pyftpdlib", reason="pyftpdlib is not installed")
    root, out = tmp_path / "root", tmp_path / "out"
    originals = files(root, 2, 200 * 1024)
    (tmp_path / "up.bin").write_bytes(b"u" * 5000)
    async with pyftpdlib_server(root, PASSWORD) as (host, port):
        config = tmp_path / "office.toml"
        config.write_text(
            f"""
[ftp]
host = "{host}"
port = {port}
user = "guest"
password_env = "FTP_PASSWORD"
mode = "active"
download = {list(originals)}
upload = ["up.bin"]
"""
        )
        status, stdout, stderr = await office(config, out, env={"FTP_PASSWORD": PASSWORD})
    assert status == 0, stderr
    assert summary(stdout, "ftp") == "2 downloaded, 1 uploaded"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == originals
    assert (root / "up.bin").read_bytes() == b"u" * 5000


@pytest.mark.skipif(VSFTPD is None, reason="vsftpd is not installed (apt-get install vsftpd)")
async def test_vsftpd_explicit_ftps_with_a_cafile(
    tmp_path: Path, ca: trustme.CA, cafile: Path
) -> None:
    """FTP against vsftpd requiring TLS: tls = "explicit" verified with the cafile."""
    root, out, work = tmp_path / "root", tmp_path / "out", tmp_path / "work"
    work.mkdir()
    originals = files(root, 2, 200 * 1024)
    pem = work / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    (tmp_path / "up.bin").write_bytes(b"v" * 7000)
    async with vsftpd_server(root, work, tls_pem=pem) as (host, port):
        config = tmp_path / "office.toml"
        config.write_text(
            f"""
[ftp]
host = "{host}"
port = {port}
tls = "explicit"
cafile = "ca.pem"
download = {list(originals)}
upload = "up.bin"
"""
        )
        status, stdout, stderr = await office(config, out, env={})
    assert status == 0, stderr
    assert summary(stdout, "ftp") == "2 downloaded, 1 uploaded"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == originals
    assert (root / "up.bin").read_bytes() == b"v" * 7000


async def test_nginx_site_crawled(tmp_path: Path) -> None:
    """HTTP against nginx: the start page fetched and its pages crawled."""
    from .test_web_nginx import nginx  # skips with a reason when nginx is missing

    async with nginx(tmp_path) as base:
        sample_pages(tmp_path / "www", 6)  # nginx serves from disk: pages added now are served
        config = tmp_path / "office.toml"
        config.write_text(f'[http]\nurl = "{base}index.html"\nmax_pages = 50\n')
        status, stdout, stderr = await office(config, tmp_path / "out", env={})
    assert status == 0, stderr
    assert summary(stdout, "web") == "index 200, 7 pages crawled, 0 broken"


class RecordingBoard(Board):
    """Every progress update the jobs make, as (total, done)."""

    def __init__(self) -> None:
        super().__init__(live=False)
        self.updates: list[tuple[float | None, float]] = []

    def update(self, job: Job, done: float, detail: str, total: float | None = None) -> None:
        super().update(job, done, detail, total)
        self.updates.append((job.total, done))


@pytest.mark.parametrize("server", ["embedded", "pyftpdlib"])
async def test_the_ftp_total_is_the_servers_size_and_is_never_run_past(
    tmp_path: Path, server: str
) -> None:
    """The bar's total is what SIZE/MLST answered plus the uploads; no update passes it,
    and the last one reaches it exactly (the embedded server answers SIZE now)."""
    from asyncnet.demos._office_config import FTPSettings

    root, out = tmp_path / "root", tmp_path / "out"
    originals = files(root, 3, 256 * 1024 + 17)
    out.mkdir()
    (tmp_path / "up.bin").write_bytes(b"w" * 70_001)
    board = RecordingBoard()
    expected = sum(len(data) for data in originals.values()) + 70_001

    async def run(host: str, port: int, user: str) -> None:
        settings = FTPSettings(
            host, port, user=user, password=PASSWORD, downloads=list(originals),
            uploads=[tmp_path / "up.bin"],
        )  # fmt: skip
        async with asyncio.timeout(30):
            await ftp_job(board, settings, out)

    if server == "embedded":
        async with FTPServer(root, users={"office": PASSWORD}) as ftpd:
            await run(*ftpd.address, "office")
    else:
        pytest.importorskip("pyftpdlib", reason="pyftpdlib is not installed")
        async with pyftpdlib_server(root, PASSWORD) as (host, port):
            await run(host, port, "guest")
    assert board.updates, "no progress at all"
    assert {total for total, _ in board.updates} == {expected}
    assert all(done <= expected for _, done in board.updates), max(d for _, d in board.updates)
    assert board.updates[-1][1] == expected
    for name, data in originals.items():
        assert hashlib.sha256((out / name).read_bytes()).digest() == hashlib.sha256(data).digest()


async def test_failures_at_run_time_name_the_table_they_come_from(tmp_path: Path) -> None:
    """A wrong password, a login that would go out in cleartext and a refused port: each
    one line naming the config file and its table, exit 1."""
    from asyncnet.mail import LocalMailServer

    with socket.socket() as closed:  # a port nothing listens on once closed
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    config = tmp_path / "office.toml"
    env = {"OFFICE_POP3_PASSWORD": "wrong"}
    async with LocalMailServer({"demo": PASSWORD}) as mail:
        pop3 = f'[pop3]\nhost = "127.0.0.1"\nport = {mail.pop3_address[1]}\nuser = "demo"\n'
        pop3 += 'password_env = "OFFICE_POP3_PASSWORD"\n'
        config.write_text(pop3 + 'tls = "none"\n')
        wrong = await office(config, tmp_path / "out", env=env)
        config.write_text(pop3 + 'auth = "user"\n')  # loopback's default: no TLS
        cleartext = await office(config, tmp_path / "out", env=env)
    config.write_text(f'[ftp]\nhost = "127.0.0.1"\nport = {dead}\ndownload = "a.bin"\n')
    refused = await office(config, tmp_path / "out", env={})
    for status, _, stderr in (wrong, cleartext, refused):
        assert status == 1, stderr
        assert stderr.count("\n") == 1, stderr
        assert "Traceback" not in stderr
    assert wrong[2].startswith(f"office: {config} [pop3]: "), wrong[2]
    assert "invalid user name or password: check user and $OFFICE_POP3_PASSWORD" in wrong[2]
    assert cleartext[2].startswith(
        f'office: {config} [pop3]: auth = "user" would send the password in cleartext: '
        'set tls = "stls"'
    ), cleartext[2]
    assert refused[2].startswith(f"office: {config} [ftp]: connect with 127.0.0.1:{dead} failed"), (
        refused[2]
    )


async def test_without_size_or_mlst_the_total_stays_unknown(tmp_path: Path) -> None:
    """A server that answers neither SIZE nor MLST: the bar counts bytes, no made-up total
    for it to run past (a total of 0 ran to "1.8 / 1.0 MiB")."""
    from asyncnet.demos._office_config import FTPSettings

    from .ftp_fakes import FakeFTP

    data = os.urandom(300_000)
    board = RecordingBoard()
    details: list[str] = []
    original = board.update

    def update(job: Job, done: float, detail: str, total: float | None = None) -> None:
        details.append(detail)
        original(job, done, detail, total)

    board.update = update  # type: ignore[method-assign]
    out = tmp_path / "out"
    out.mkdir()
    fake = FakeFTP(files={"big.bin": data}, replies={"SIZE": b"502 not implemented\r\n"})
    async with fake:
        settings = FTPSettings(*fake.address, password="x", downloads=["big.bin"])
        async with asyncio.timeout(30):
            await ftp_job(board, settings, out)
    assert "MLST big.bin" in fake.commands  # asked, and refused with 500
    assert "SIZE big.bin" in fake.commands
    assert {total for total, _ in board.updates} == {None}
    assert board.updates[-1][1] == len(data)
    assert details[-1] == "1 downloaded, 0 uploaded"
    assert all("/" not in detail for detail in details[:-1]), details
    assert (out / "big.bin").read_bytes() == data
