"""Our POP3 client against independent POP3 servers: Dovecot (Debian's dovecot-pop3d) and
Twisted's twisted.mail.pop3, each in a subprocess on 127.0.0.1, with UIDL, TOP and STLS."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from asyncnet.mail import FetchStore, POP3Client, POP3ReplyError, fetch_all
from asyncnet.protocols import ensure_final_newline

from .helpers import ROOT

MESSAGES = [
    b"From: a@example.org\nSubject: first\n\nhello\n",
    b"From: b@example.org\nSubject: dots\n\n.\n..two\n...three\nlast line\n",
    b"From: c@example.org\nSubject: third\n\nline 1\nline 2\nline 3\n",
]
DOVECOT = shutil.which("dovecot") or (
    "/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None
)


def free_port() -> int:
    # The external servers take a port number in their config, so pick one the OS
    # just handed out; the brief race is retried by the fixtures.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_maildir(path: Path) -> None:
    for sub in ("new", "cur", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    for n, message in enumerate(MESSAGES, 1):
        (path / "cur" / f"100000000{n}.M{n}P1.test:2,").write_bytes(message)


async def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Wait until something accepts on 127.0.0.1:port (or the process dies).

    Dovecot announces nothing when it listens (no output, no notify socket here):
    trying to connect, bounded in time, is the only way to know.
    """
    async with asyncio.timeout(timeout):
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)  # not listening yet: see the docstring
                continue
            writer.close()
            await writer.wait_closed()
            return


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[Path, Path, ssl.SSLContext]]:
    """(cert file, key file, client context) from a trustme CA."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(cert_path)
    cert.private_key_pem.write_to_path(key_path)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return cert_path, key_path, client


DOVECOT_CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
mail_location = maildir:~/Maildir
first_valid_uid = {uid}
default_login_user = {login_user}
default_internal_user = {internal_user}
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


@pytest.fixture
async def dovecot(tls: tuple[Path, Path, ssl.SSLContext]) -> AsyncIterator[int]:
    """Dovecot's POP3 server in a subprocess with a passwd-file user alice/secret."""
    if DOVECOT is None:
        pytest.skip("dovecot is not installed (apt-get install dovecot-pop3d; .ci/run does)")
    cert, key, _ = tls
    # Dovecot's mail processes run as an unprivileged user: they cannot enter pytest's
    # 0700 tmp_path when we are root, so the server gets a directory of its own.
    root = Path(tempfile.mkdtemp(prefix="asyncnet-dovecot-"))
    try:
        async for port in _run_dovecot(root, cert, key):
            yield port
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _run_dovecot(root: Path, cert: Path, key: Path) -> AsyncIterator[int]:
    home = root / "home" / "alice"
    write_maildir(home / "Maildir")
    for sub in ("run", "state"):
        (root / sub).mkdir(parents=True)
    shutil.copy(cert, root / "cert.pem")
    shutil.copy(key, root / "key.pem")
    uid, gid = os.getuid(), os.getgid()
    users = {"login_user": "dovenull", "internal_user": "dovecot"}
    if uid == 0:  # Dovecot never gives mail access to root: serve as the dovecot user
        entry = pwd.getpwnam("dovecot")
        uid, gid = entry.pw_uid, entry.pw_gid
        os.chmod(root, 0o755)
        for path in (root / "home").rglob("*"):
            os.chown(path, uid, gid)
        os.chown(root / "home", uid, gid)
    else:
        me = pwd.getpwuid(uid).pw_name
        users = {"login_user": me, "internal_user": me}
    (root / "passwd").write_text(f"alice:{{PLAIN}}secret:{uid}:{gid}::{home}\n")
    for attempt in range(3):
        port = free_port()
        conf = root / "dovecot.conf"
        conf.write_text(
            DOVECOT_CONF.format(
                root=root,
                cert=root / "cert.pem",
                key=root / "key.pem",
                uid=uid,
                port=port,
                **users,
            )
        )
        proc = subprocess.Popen([DOVECOT or "dovecot", "-F", "-c", str(conf)])
        try:
            await wait_listening(port, proc)
        except RuntimeError:
            stop(proc)
            if attempt == 2:
                log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
                pytest.fail(f"dovecot did not start: {log}")
            continue
        try:
            yield port
        finally:
            stop(proc)
        return


@pytest.mark.slow
async def test_dovecot_uidl_top_retr_stls(
    dovecot: int, tls: tuple[Path, Path, ssl.SSLContext], tmp_path: Path
) -> None:
    """Against Dovecot: STLS, login, STAT, UIDL (stable), TOP, RETR byte-exact, DELE+QUIT."""
    _, _, client_ctx = tls
    options = {"tls": "stls", "ssl_context": client_ctx, "timeout": 10}
    async with asyncio.timeout(60):
        async with POP3Client("127.0.0.1", dovecot, **options) as pop:  # type: ignore[arg-type]
            assert pop.encrypted
            await pop.login("alice", "secret")
            count, _ = await pop.stat()
            assert count == 3
            uids = await pop.uidl()
            assert len(set(uids.values())) == 3
            bodies = {n: await pop.retr(n) for n in sorted(uids)}
            assert sorted(bodies.values()) == sorted(ensure_final_newline(m) for m in MESSAGES)
            listing = await pop.list()
            assert all(listing[n] == len(bodies[n]) for n in listing)
            number = next(n for n, b in bodies.items() if b"Subject: third" in b)
            top = await pop.top(number, 1)
            assert top.endswith(b"\r\n\r\nline 1\r\n")
            await pop.dele(number)
        async with POP3Client("127.0.0.1", dovecot, **options) as pop:  # type: ignore[arg-type]
            await pop.login("alice", "secret")
            after = await pop.uidl()
            assert sorted(after.values()) == sorted(u for n, u in uids.items() if n != number)
            with pytest.raises(POP3ReplyError):
                await pop.login("alice", "secret")  # already in TRANSACTION: -ERR
        async with POP3Client("127.0.0.1", dovecot, **options) as pop:  # type: ignore[arg-type]
            await pop.login("alice", "secret")
            store = FetchStore(tmp_path / "saved", "alice@dovecot")
            report = await fetch_all(pop, store, delete=True)
            assert report.ok
            assert len(report.stored) == 2
        async with POP3Client("127.0.0.1", dovecot, **options) as pop:  # type: ignore[arg-type]
            await pop.login("alice", "secret")
            assert await pop.stat() == (0, 0)


@pytest.mark.slow
async def test_dovecot_wrong_password(dovecot: int, tls: tuple[Path, Path, ssl.SSLContext]) -> None:
    """Against Dovecot: a wrong password is a -ERR reply, typed."""
    async with asyncio.timeout(60):
        async with POP3Client(
            "127.0.0.1", dovecot, tls="stls", ssl_context=tls[2], timeout=20
        ) as pop:
            with pytest.raises(POP3ReplyError):
                await pop.login("alice", "wrong")


@pytest.fixture
async def twisted_pop3(
    tmp_path: Path, tls: tuple[Path, Path, ssl.SSLContext]
) -> AsyncIterator[int]:
    """Twisted's POP3 server (tests/twisted_pop3_server.py) in a subprocess."""
    pytest.importorskip("twisted.mail.pop3")
    cert, key, _ = tls
    maildir = tmp_path / "twisted" / "alice"
    write_maildir(maildir)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "twisted_pop3_server.py"),
            str(maildir),
            str(cert),
            str(key),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        if not line.startswith(b"port "):
            assert proc.stderr is not None
            pytest.fail(f"twisted POP3 server did not start: {line!r} {proc.stderr.read()!r}")
        yield int(line.split()[1])
    finally:
        stop(proc)


@pytest.mark.slow
async def test_twisted_uidl_top_retr_stls(
    twisted_pop3: int, tls: tuple[Path, Path, ssl.SSLContext]
) -> None:
    """Against twisted.mail.pop3: STLS, login, UIDL, TOP, RETR, DELE+QUIT."""
    options = {"tls": "stls", "ssl_context": tls[2], "timeout": 10}
    async with asyncio.timeout(60):
        async with POP3Client("127.0.0.1", twisted_pop3, **options) as pop:  # type: ignore[arg-type]
            assert pop.encrypted
            await pop.login("alice", "secret")
            assert (await pop.stat())[0] == 3
            uids = await pop.uidl()
            assert len(set(uids.values())) == 3
            bodies = sorted([await pop.retr(n) for n in sorted(uids)])
            assert bodies == sorted(ensure_final_newline(m) for m in MESSAGES)
            top = await pop.top(1, 0)
            assert top.startswith(b"From: ")
            assert top.endswith(b"\r\n\r\n")
            await pop.dele(1)
        async with POP3Client("127.0.0.1", twisted_pop3, **options) as pop:  # type: ignore[arg-type]
            await pop.login("alice", "secret")
            assert sorted((await pop.uidl()).values()) == sorted(
                u for n, u in uids.items() if n != 1
            )


@pytest.mark.slow
async def test_twisted_uidl_of_one_message(
    twisted_pop3: int, tls: tuple[Path, Path, ssl.SSLContext]
) -> None:
    """twisted.mail.pop3 answers ``UIDL n`` with ``+OK <uid>`` (no message number): the
    client takes it as message n's unique-id, the same one the full listing gives."""
    options = {"tls": "stls", "ssl_context": tls[2], "timeout": 10}
    async with asyncio.timeout(60):
        async with POP3Client("127.0.0.1", twisted_pop3, **options) as pop:  # type: ignore[arg-type]
            await pop.login("alice", "secret")
            listing = await pop.uidl()
            for number, uid in listing.items():
                assert await pop.uidl(number) == {number: uid}
