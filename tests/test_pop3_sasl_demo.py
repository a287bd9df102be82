"""The mailbox demo's login: --auth, the password's sources (never "demo" for another
user, a prompt on a terminal), --cafile/--cert/--key, each failure one line."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asyncnet.mail import Maildirs, PasswordAuthenticator, POP3Server

from .helpers import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

USERS = {"demo": "demo", "alice": "wonderland"}
SECRETS = ("ASYNCNET_MAIL_PASSWORD", "ASYNCNET_OAUTH_TOKEN")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[POP3Server]:
    """Our POP3 server (SASL PLAIN and CRAM-MD5, APOP, USER) with demo/demo and alice."""
    maildirs = Maildirs(tmp_path, list(USERS))
    maildirs.deliver_now("alice", b"Subject: for alice\r\n\r\nhi\r\n")
    pop3 = POP3Server(maildirs, PasswordAuthenticator(USERS), port=0, failed_login_delay=0.01)
    async with pop3:
        yield pop3


def environment(**extra: str) -> dict[str, str]:
    """This environment without the demo's secrets, plus ``extra``."""
    return {**{k: v for k, v in os.environ.items() if k not in SECRETS}, **extra}


async def mailbox(server: POP3Server, *args: str, **env: str) -> tuple[int, str, str]:
    """Run the demo against ``server`` with no terminal; (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asyncnet.demos.mailbox",
        "--port", str(server.address[1]), *args,
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=environment(**env),
    )  # fmt: skip
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def one_line(err: str) -> str:
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert err.startswith("python -m asyncnet.demos.mailbox: error: ")
    return err


async def test_the_local_pairs_user_needs_no_password(server: POP3Server) -> None:
    """The default user "demo" on loopback gets the local pair's password, and the best
    method without TLS is CRAM-MD5."""
    status, out, err = await mailbox(server)
    assert status == 0, err
    assert "0 message(s)" in out


async def test_another_user_is_never_sent_demo(server: POP3Server) -> None:
    """--user alice on loopback without a terminal and without $ASYNCNET_MAIL_PASSWORD:
    one line saying how to give the password, and no connection at all."""
    before = server.stats.connections_total
    status, _, err = await mailbox(server, "--user", "alice")
    assert status == 1
    assert "no password for alice@127.0.0.1: set $ASYNCNET_MAIL_PASSWORD" in one_line(err)
    assert server.stats.connections_total == before
    status, out, err = await mailbox(server, "--user", "alice", ASYNCNET_MAIL_PASSWORD="wonderland")
    assert status == 0, err
    assert "1 message(s)" in out
    assert "for alice" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--auth", "plain"], "--auth plain would send the password in cleartext: use --tls"),
        (["--auth", "user"], "--auth user would send the password in cleartext"),
        (["--auth", "login", "--tls", "none"], "the server refused --auth login"),
    ],
)
async def test_refusals_are_one_line_naming_the_option(
    server: POP3Server, args: list[str], expected: str
) -> None:
    """Cleartext PLAIN/USER without --tls none, and a mechanism the server refuses."""
    status, _, err = await mailbox(server, *args)
    assert status == 1
    assert expected in one_line(err)
    if "refused" in expected:
        assert "it offers: cram-md5, apop, plain, user" in err
        assert "Choose one of those with --auth" in err


@pytest.mark.parametrize("method", ["plain", "cram-md5", "apop", "user"])
async def test_each_method_logs_in(server: POP3Server, method: str) -> None:
    """--auth with each method our server offers (cleartext ones with --tls none)."""
    status, out, err = await mailbox(
        server, "--user", "alice", "--auth", method, "--tls", "none",
        ASYNCNET_MAIL_PASSWORD="wonderland",
    )  # fmt: skip
    assert status == 0, err
    assert "1 message(s)" in out


async def test_wrong_password_and_missing_token(server: POP3Server) -> None:
    """A wrong password names --user and the password's sources; --auth xoauth2 without
    $ASYNCNET_OAUTH_TOKEN says where the token goes, before connecting."""
    status, _, err = await mailbox(server, "--user", "alice", ASYNCNET_MAIL_PASSWORD="nope")
    assert status == 1
    line = one_line(err)
    assert "AUTH CRAM-MD5 refused: -ERR [AUTH]" in line
    assert "check --user and the password" in line
    before = server.stats.connections_total
    status, _, err = await mailbox(server, "--auth", "xoauth2")
    assert status == 1
    assert "--auth xoauth2 needs the OAuth 2.0 access token in $ASYNCNET_OAUTH_TOKEN" in err
    assert server.stats.connections_total == before


@pytest.mark.parametrize(
    ("args", "status", "expected"),
    [
        (["--cafile", "ca.pem"], 2, "--cafile needs TLS: add --tls stls"),
        (["--cert", "c.pem", "--key", "k.pem", "--tls", "none"], 2, "--cert/--key need TLS"),
        (["--cafile", "missing.pem", "--tls", "stls"], 1, "--cafile missing.pem: no such file"),
        (["--auth", "gssapi"], 2, "invalid choice: 'gssapi'"),
    ],
)
async def test_tls_files_and_bad_auth(
    server: POP3Server, args: list[str], status: int, expected: str
) -> None:
    """TLS files without TLS, a missing CA file, an unknown --auth: one line each."""
    got, _, err = await mailbox(server, *args)
    assert got == status
    assert expected in one_line(err)


def prompt_and_answer(master: int, prompt: bytes, answer: bytes, timeout: float) -> bytes:
    """Read the terminal until ``prompt`` shows, then type ``answer``; what was shown."""
    shown = b""
    deadline = time.monotonic() + timeout
    while prompt not in shown:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no prompt on the terminal; it showed {shown!r}")
        ready, _, _ = select.select([master], [], [], left)
        if ready:
            try:
                shown += os.read(master, 1024)
            except OSError:  # the other side closed: the prompt will never come
                raise TimeoutError(f"the terminal closed; it showed {shown!r}") from None
    os.write(master, answer)
    return shown


# The child makes the pseudo-terminal its controlling terminal (a new session, then
# open it), as a login shell's would be: getpass reads from /dev/tty, not from stdin.
ON_A_TERMINAL = """\
import os, sys
os.setsid()
fd = os.open(sys.argv[1], os.O_RDWR)
os.dup2(fd, 0)
os.execv(sys.executable, [sys.executable, "-m", "asyncnet.demos.mailbox", *sys.argv[2:]])
"""


async def test_a_terminal_asks_for_the_password(server: POP3Server) -> None:
    """On a terminal, --user alice is asked for her password (not echoed), then logs in."""
    master, slave = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", ON_A_TERMINAL, os.ttyname(slave),
            "--port", str(server.address[1]), "--user", "alice",
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=environment(),
        )  # fmt: skip
        # The parent keeps its end of the slave open until the child has answered:
        # with no slave open, reading the master fails (EIO) until the child opens it.
        shown = await asyncio.to_thread(
            prompt_and_answer, master, b"password for alice@127.0.0.1: ", b"wonderland\n", 20
        )
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, err
    assert b"wonderland" not in shown
    assert b"1 message(s)" in out
