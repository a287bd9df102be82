"""Dovecot's POP3 server for the interop tests: a generated config on a free loopback
port, a passwd-file user alice/secret (stored in plain text, so that CRAM-MD5 works)
and a Maildir of three messages."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

__all__ = ["DOVECOT", "MESSAGES", "dovecot_server", "stop", "wait_listening", "write_maildir"]

MESSAGES = [
    b"From: a@example.org\nSubject: first\n\nhello\n",
    b"From: b@example.org\nSubject: dots\n\n.\n..two\n...three\nlast line\n",
    b"From: c@example.org\nSubject: third\n\nline 1\nline 2\nline 3\n",
]
DOVECOT: str | None = shutil.which("dovecot") or (
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
auth_mechanisms = {mechanisms}
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


SASL_MECHANISMS = "plain login cram-md5"
"""Dovecot's default is PLAIN alone; the SASL interop tests need LOGIN and CRAM-MD5 too."""


@contextlib.asynccontextmanager
async def dovecot_server(
    cert: Path, key: Path, *, mechanisms: str = SASL_MECHANISMS
) -> AsyncIterator[int]:
    """Run Dovecot (which must be installed: see :data:`DOVECOT`); yields its POP3 port.

    Dovecot's mail processes run as an unprivileged user: they cannot enter pytest's
    0700 tmp_path when we are root, so the server gets a directory of its own.
    """
    root = Path(tempfile.mkdtemp(prefix="asyncnet-dovecot-"))
    try:
        async for port in _run_dovecot(root, cert, key, mechanisms):
            yield port
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _run_dovecot(root: Path, cert: Path, key: Path, mechanisms: str) -> AsyncIterator[int]:
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
                mechanisms=mechanisms,
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
