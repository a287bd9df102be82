"""The mail side under a hostile peer: a bounded SMTP DATA reader and RCPT count, deliveries
that do not keep message bytes, POP3 guessing slowed per peer across connections, Maildir
tmp leftovers of killed processes cleaned, and UIDL n in both reply forms."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import inspect
import os
import socket
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP as AioSMTP

from asyncnet.mail import (
    FetchStore,
    LocalMailServer,
    PasswordAuthenticator,
    POP3Client,
    POP3ProtocolError,
    POP3ReplyError,
    POP3Server,
    make_message,
    send_message,
)
from asyncnet.mail._maildir import Maildirs, clean_tmp, tmp_name
from asyncnet.mail._pop3.protocol import parse_uidl_reply
from asyncnet.mail._smtpd import _DataBody
from asyncnet.servers import LoginThrottle

from .helpers import ROOT

MiB = 1 << 20


class SMTPRaw:
    """A raw SMTP connection: write command lines, read (multi-line) replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, address: tuple[str, int]) -> SMTPRaw:
        reader, writer = await asyncio.open_connection(*address)
        raw = cls(reader, writer)
        assert (await raw.reply()).startswith("220")
        return raw

    async def reply(self) -> str:
        lines = []
        async with asyncio.timeout(30):
            while True:
                line = (await self.reader.readline()).decode("ascii", "replace")
                assert line, f"connection closed after {lines!r}"
                lines.append(line.rstrip("\r\n"))
                if line[3:4] != "-":
                    return "\n".join(lines)

    async def command(self, line: str) -> str:
        self.writer.write(line.encode("ascii") + b"\r\n")
        return await self.reply()

    async def envelope(self, *recipients: str) -> None:
        assert (await self.command("EHLO test.example")).startswith("250")
        assert (await self.command("MAIL FROM:<me@localhost>")).startswith("250")
        for rcpt in recipients:
            assert (await self.command(f"RCPT TO:<{rcpt}>")).startswith("250")

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


# -- SMTP DATA: bounded whatever the peer sends -----------------------------------------


@pytest.mark.timeout(120)
async def test_data_line_without_crlf_is_bounded_and_refused_with_552() -> None:
    """64 MiB after DATA with no CRLF: what the server holds stays within its size limit
    plus a small constant (aiosmtpd's own DATA reader kept every fragment), the reply is
    552 once the terminator comes, and the server goes on serving other clients."""
    limit = MiB
    chunk = b"x" * MiB
    async with (
        LocalMailServer({"demo": "demo"}, data_size_limit=limit) as mail,
        asyncio.timeout(100),
    ):
        smtp = await SMTPRaw.connect(mail.smtp_address)
        await smtp.envelope("demo@localhost")
        assert (await smtp.command("DATA")).startswith("354")
        gc.collect()
        tracemalloc.start()
        try:
            for _ in range(64):
                smtp.writer.write(chunk)
                await smtp.writer.drain()
            smtp.writer.write(b"\r\n.\r\n")
            reply = await smtp.reply()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < limit + 4 * MiB, f"the server held {peak} bytes for a {limit}-byte limit"
        assert reply.startswith("552 "), reply
        # the same session goes on, and so does everyone else's
        assert (await smtp.command("NOOP")).startswith("250")
        await smtp.close()
        message = make_message(
            sender="me@localhost", recipients=["demo@localhost"], subject="after", body="ok\n"
        )
        assert await send_message(message, port=mail.smtp_address[1]) == {}
        await mail.wait_for_deliveries(1)
    assert mail.delivery_count == 1


async def test_data_over_the_size_limit_in_short_lines_is_552() -> None:
    """Many short lines past the size limit: 552 after the terminator, nothing delivered."""
    async with LocalMailServer({"demo": "demo"}, data_size_limit=4096) as mail:
        smtp = await SMTPRaw.connect(mail.smtp_address)
        await smtp.envelope("demo@localhost")
        assert (await smtp.command("DATA")).startswith("354")
        smtp.writer.write(b"Subject: big\r\n\r\n" + b"0123456789\r\n" * 1000 + b".\r\n")
        assert (await smtp.reply()).startswith("552 ")
        assert (await smtp.command("QUIT")).startswith("221")
        await smtp.close()
    assert mail.delivery_count == 0


async def test_data_long_line_within_the_size_limit_is_500() -> None:
    """A line over RFC 5321's 1000 octets but within the size limit: 500, not delivered."""
    async with LocalMailServer({"demo": "demo"}) as mail:
        smtp = await SMTPRaw.connect(mail.smtp_address)
        await smtp.envelope("demo@localhost")
        assert (await smtp.command("DATA")).startswith("354")
        smtp.writer.write(b"Subject: long\r\n\r\n" + b"y" * 5000 + b"\r\n.\r\n")
        assert (await smtp.reply()).startswith("500 ")
        await smtp.close()
    assert mail.delivery_count == 0


async def test_data_is_byte_exact_and_pipelined_commands_survive() -> None:
    """Dot-stuffed lines come back unstuffed, byte-exact; a command pipelined right after
    the terminating dot is answered (the DATA reader never reads past the dot)."""
    body = b"Subject: dots\r\n\r\n..one\r\n...two\r\n.\r\nlast\r\n"
    stuffed = body.replace(b"\r\n.", b"\r\n..")
    async with LocalMailServer({"demo": "demo"}) as mail:
        smtp = await SMTPRaw.connect(mail.smtp_address)
        await smtp.envelope("demo@localhost")
        assert (await smtp.command("DATA")).startswith("354")
        smtp.writer.write(stuffed + b".\r\nQUIT\r\n")
        assert (await smtp.reply()).startswith("250 ")
        assert (await smtp.reply()).startswith("221 ")
        await smtp.close()
        await mail.wait_for_deliveries(1)
        assert mail.deliveries[0].data == body


def _feed(body: _DataBody, pieces: list[bytes]) -> bool:
    return any([body.feed(piece) for piece in pieces])


def test_data_body_limits_and_unstuffing() -> None:
    """The DATA body without I/O: pieces as the stream reader hands them (whole lines,
    or a long line in parts); the held bytes never pass the limits; past the size
    limit the reply is 552 even when a long line came first, else 500."""
    body = _DataBody(size_limit=100, line_limit=10)
    assert not _feed(body, [b"a\r\n", b"..b\r\n", b"x" * 4, b"y\r\n"])
    assert body.feed(b".\r\n")
    assert body.refusal is None
    assert body.content() == b"a\r\n.b\r\nxxxxy\r\n"

    long_line = _DataBody(size_limit=100, line_limit=10)
    assert not _feed(long_line, [b"x" * 8, b"x" * 8, b".\r\n", b"ok\r\n"])  # "." mid-line
    assert long_line.feed(b".\r\n")
    assert long_line.refusal is not None
    assert long_line.refusal.startswith("500 ")

    too_much = _DataBody(size_limit=100, line_limit=10)
    assert not _feed(too_much, [b"x" * 10] * 30)
    assert too_much.lines == []
    assert too_much.refusal is not None
    assert too_much.refusal.startswith("552 ")
    assert not too_much.feed(b"\r\n")
    assert too_much.feed(b".\r\n")


# -- SMTP RCPT: bounded -----------------------------------------------------------------


async def test_rcpt_limit_is_100_by_default_then_452() -> None:
    """RFC 5321 4.5.3.1.8: the 101st recipient gets 452 4.5.3; the first 100 still get
    the message, and RSET starts a fresh count."""
    async with LocalMailServer({"demo": "demo"}) as mail, asyncio.timeout(30):
        smtp = await SMTPRaw.connect(mail.smtp_address)
        await smtp.envelope()
        smtp.writer.write(b"RCPT TO:<demo@localhost>\r\n" * 101)
        replies = [await smtp.reply() for _ in range(101)]
        assert all(r.startswith("250") for r in replies[:100])
        assert replies[100] == "452 4.5.3 Too many recipients"
        assert (await smtp.command("RCPT TO:<demo@localhost>")).startswith("452")
        assert (await smtp.command("DATA")).startswith("354")
        assert (await smtp.command("Subject: x\r\n\r\nhi\r\n.")).startswith("250")
        await smtp.envelope("demo@localhost")  # a new transaction: counted from 0
        assert (await smtp.command("RSET")).startswith("250")
        await smtp.close()
        await mail.wait_for_deliveries(1)


async def test_rcpt_limit_is_configurable_and_reported_as_refused() -> None:
    """max_recipients=2: the client sees the extra recipients refused with 452, like
    smtplib.sendmail's dictionary; the others get the message."""
    users = {f"u{n}": "pw" for n in range(4)}
    async with LocalMailServer(users, max_recipients=2) as mail, asyncio.timeout(30):
        recipients = [f"u{n}@localhost" for n in range(4)]
        message = make_message(
            sender="me@localhost", recipients=recipients, subject="s", body="b\n"
        )
        refused = await send_message(message, port=mail.smtp_address[1])
        assert refused == {
            "u2@localhost": (452, "4.5.3 Too many recipients"),
            "u3@localhost": (452, "4.5.3 Too many recipients"),
        }
        await mail.wait_for_deliveries(2)
        assert sorted(d.user for d in mail.deliveries) == ["u0", "u1"]


# -- LocalMailServer.deliveries: metadata only ------------------------------------------


@pytest.mark.slow
async def test_deliveries_do_not_keep_message_bytes() -> None:
    """Three 1 MiB messages: the server keeps metadata, not the bytes (it kept every
    message for the life of the process); the bytes are read back from the Maildir."""
    body = ("z" * 75 + "\n") * (MiB // 76)
    message = make_message(
        sender="me@localhost", recipients=["demo@localhost"], subject="big", body=body
    )
    async with LocalMailServer({"demo": "demo"}) as mail, asyncio.timeout(30):
        assert await send_message(message, port=mail.smtp_address[1]) == {}  # warm up
        await mail.wait_for_deliveries(1)
        gc.collect()
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            for _ in range(3):
                assert await send_message(message, port=mail.smtp_address[1]) == {}
            await mail.wait_for_deliveries(4)
            gc.collect()
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert after - before < MiB // 2, f"{after - before} bytes kept for 3 deliveries"
        last = mail.deliveries[-1]
        assert last.size == len(last.data)
        assert last.data.endswith(body.replace("\n", "\r\n").encode())


async def test_deliveries_keep_the_last_n_and_count_them_all() -> None:
    """max_deliveries bounds the list; wait_for_deliveries counts every delivery."""
    async with LocalMailServer({"demo": "demo"}, max_deliveries=2) as mail, asyncio.timeout(30):
        for n in range(3):
            message = make_message(
                sender="me@localhost", recipients=["demo@localhost"], subject=f"n{n}", body="b\n"
            )
            assert await send_message(message, port=mail.smtp_address[1]) == {}
        await mail.wait_for_deliveries(3)
        assert mail.delivery_count == 3
        assert [b"Subject: n1" in d.data for d in mail.deliveries] == [True, False]
        assert b"Subject: n2" in mail.deliveries[1].data
        async with POP3Client(*mail.pop3_address) as pop:
            await pop.login("demo", "demo")
            for number in range(1, 4):
                await pop.dele(number)
        with pytest.raises(KeyError):
            _ = mail.deliveries[0].data  # read on demand: gone once deleted


# -- POP3: one penalty per peer across its connections -----------------------------------


class CountingAuthenticator(PasswordAuthenticator):
    """PasswordAuthenticator that counts the passwords it was asked to check."""

    checks = 0

    def check(self, user: str, password: str) -> bool:
        self.checks += 1
        return super().check(user, password)

    def secret(self, user: str) -> str | None:
        self.checks += 1
        return super().secret(user)


def checks_within(seconds: float, first_delay: float, max_delay: float) -> int:
    """Checks one peer can get in ``seconds`` when every one fails: the first at once,
    each next one after the doubling delay that follows a failure."""
    checks, at, delay = 1, first_delay, first_delay
    while at <= seconds:
        checks += 1
        delay = min(2 * delay, max_delay)
        at += delay
    return checks


class Guessers:
    """Forty connections from 127.0.0.1 guessing alice's password at once."""

    def __init__(self, server: POP3Server, how: str, count: int = 40) -> None:
        self.address = server.address[:2]
        self.auth = server.authenticator
        assert isinstance(self.auth, CountingAuthenticator)
        self.how = how
        self.count = count
        self.replies: list[str] = []
        self.checks = 0
        """Passwords the server checked while the guessing ran."""
        self.elapsed = 0.0
        """How long it ran (longer than asked when the loop was slow)."""
        self._connected = 0
        self._all_connected = asyncio.Event()
        self._go = asyncio.Event()

    async def _guess(self) -> None:
        """One connection: wrong passwords until cancelled (at most 100)."""
        reader, writer = await asyncio.open_connection(*self.address)
        try:
            greeting = (await reader.readline()).decode()
            timestamp = greeting[greeting.index("<") : greeting.index(">") + 1]
            self._connected += 1
            if self._connected == self.count:
                self._all_connected.set()
            await self._go.wait()
            for n in range(100):
                if self.how == "APOP":
                    digest = hashlib.md5(f"{timestamp}guess{n}".encode()).hexdigest()
                    writer.write(f"APOP alice {digest}\r\n".encode())
                else:
                    writer.write(f"USER alice\r\nPASS guess{n}\r\n".encode())
                    assert (await reader.readline()).startswith(b"+OK")
                self.replies.append((await reader.readline()).decode().rstrip("\r\n"))
        finally:
            writer.transport.abort()

    async def run(self, seconds: float) -> list[str]:
        """Connect all, then guess in parallel for ``seconds``; the replies received."""
        tasks = [asyncio.create_task(self._guess()) for _ in range(self.count)]
        try:
            async with asyncio.timeout(10):
                await self._all_connected.wait()
            loop = asyncio.get_running_loop()
            start = loop.time()
            self._go.set()
            await asyncio.wait(tasks, timeout=seconds)
            self.checks, self.elapsed = self.auth.checks, loop.time() - start
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return self.replies


@pytest.mark.parametrize("how", ["USER/PASS", "APOP"])
@pytest.mark.timeout(30)
@pytest.mark.slow
async def test_parallel_guessing_is_slowed_per_peer(tmp_path: Path, how: str) -> None:
    """Forty connections guessing at once from 127.0.0.1 (failed_login_delay=0.05, the
    throttle's first delay): a handful of passwords checked in a second, not one per
    connection per delay (79 guesses a second were seen with 40 connections)."""
    auth = CountingAuthenticator({"alice": "wonderland"})
    maildirs = Maildirs(tmp_path, ["alice"])
    # grace: the attempts still queued in the throttle are not answered, only cancelled
    # (a session reads nothing while a command runs, so it cannot see its client gone)
    options = {"port": 0, "failed_login_delay": 0.05, "grace": 0.1}
    async with POP3Server(maildirs, auth, **options) as server:
        guessers = Guessers(server, how)
        await guessers.run(1.0)
    # delays 0.05, 0.1, 0.2, 0.4 after each failure: 5 checks fit in 1.0 s, a 6th at 1.55 s
    allowed = checks_within(guessers.elapsed, 0.05, 30.0) + 1  # + one being checked
    assert guessers.checks <= allowed, f"{guessers.checks} checks in {guessers.elapsed:.2f} s"
    assert server.login_throttle.first_delay == 0.05


@pytest.mark.parametrize("how", ["USER/PASS", "APOP"])
@pytest.mark.timeout(30)
@pytest.mark.slow
async def test_locked_out_peer_gets_sys_temp_unchecked(tmp_path: Path, how: str) -> None:
    """Past max_delay the peer is locked out: -ERR [SYS/TEMP] at once, password unchecked."""
    auth = CountingAuthenticator({"alice": "wonderland"})
    throttle = LoginThrottle(first_delay=0.05, max_delay=0.2, service="pop3")
    maildirs = Maildirs(tmp_path, ["alice"])
    async with POP3Server(maildirs, auth, port=0, login_throttle=throttle, grace=0.1) as server:
        guessers = Guessers(server, how)
        replies = await guessers.run(0.5)
        assert server.login_throttle is throttle
    locked = "-ERR [SYS/TEMP] too many failed logins; try again later"
    assert locked in replies
    assert set(replies) <= {locked, "-ERR [AUTH] invalid user name or password"}
    assert guessers.checks <= checks_within(guessers.elapsed, 0.05, 0.2) + 1
    assert 0 < replies.count(locked) <= throttle.refused_logins  # some were still in flight


async def test_right_password_after_failures_logs_in(tmp_path: Path) -> None:
    """A failure costs the peer a delay, not the account: the right password then works."""
    auth = PasswordAuthenticator({"alice": "wonderland"})
    async with POP3Server(
        Maildirs(tmp_path, ["alice"]), auth, port=0, failed_login_delay=0.01
    ) as s:
        async with POP3Client(*s.address[:2], timeout=5) as pop:
            with pytest.raises(POP3ReplyError, match=r"\[AUTH\]"):
                await pop.login("alice", "wrong")
            assert s.login_throttle.failures(("127.0.0.1", 0)) == 1
            assert "alice has 0 message" in await pop.login("alice", "wonderland")
        assert s.login_throttle.failures(("127.0.0.1", 0)) == 0


# -- Maildir tmp leftovers ----------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(proc.stdout)


def _host() -> str:
    return socket.gethostname().replace("/", r"\057").replace(":", r"\072")


def test_clean_tmp_removes_dead_pids_and_old_files(tmp_path: Path) -> None:
    """maildir(5): tmp files older than 36 h go; so do files of a process that is no
    longer running on this host, at once. A live process's and another host's stay."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    dead, now = _dead_pid(), int(time.time())
    files = {
        "dead": f"{now}.M1P{dead}Q1.{_host()}",  # the stdlib's mailbox.Maildir form
        "dead_r": f"{now}.M2P{dead}R0a1b2c3d.{_host()}",
        "live": f"{now}.M3P{os.getpid()}Q1.{_host()}",
        "other_host": f"{now}.M4P{dead}Q1.elsewhere.example",
        "odd": "not-a-maildir-name",
        "old": "not-a-maildir-name-either",
        "old_live": f"{now}.M5P{os.getpid()}Q2.{_host()}",
    }
    for name in files.values():
        (tmp / name).write_bytes(b"partial")
    two_days_ago = time.time() - 48 * 3600
    for key in ("old", "old_live"):
        os.utime(tmp / files[key], (two_days_ago, two_days_ago))
    removed = clean_tmp(tmp_path)
    assert sorted(p.name for p in removed) == sorted(
        files[k] for k in ("dead", "dead_r", "old", "old_live")
    )
    assert sorted(p.name for p in tmp.iterdir()) == sorted(
        files[k] for k in ("live", "other_host", "odd")
    )
    assert clean_tmp(tmp_path / "missing") == []


def test_tmp_name_carries_pid_and_host() -> None:
    """The names our writers use are the Maildir form: time.MusecPpidRrandom.host."""
    name = tmp_name()
    seconds, unique, host = name.split(".", 2)
    assert seconds.isdigit()
    assert f"P{os.getpid()}R" in unique
    assert host == _host()
    assert tmp_name() != name


_LEFTOVER = """
import sys
from asyncnet.mail._store import FetchStore
path, file = FetchStore(sys.argv[1], "demo@127.0.0.1:110").begin("uid-1")
file.write(b"half a message")
file.flush()
print(path, flush=True)
import os; os._exit(0)  # like a SIGKILL mid-RETR: no cleanup runs
"""


def test_fetch_store_start_removes_a_killed_runs_tmp_file(tmp_path: Path) -> None:
    """A run killed mid-RETR leaves DIR/tmp/<file>; the next FetchStore removes it."""
    save = tmp_path / "inbox"
    proc = subprocess.run(
        [sys.executable, "-c", _LEFTOVER, str(save)],
        capture_output=True, text=True, check=True, cwd=ROOT, timeout=30,
    )  # fmt: skip
    leftover = Path(proc.stdout.strip())
    assert leftover.parent == save / "tmp"
    assert leftover.exists()
    FetchStore(save, "demo@127.0.0.1:110")
    assert list((save / "tmp").iterdir()) == []


@pytest.mark.slow
async def test_mailbox_save_and_mailserver_clean_their_tmp(tmp_path: Path) -> None:
    """The demos: mailbox --save DIR and the mailserver's Maildirs start by removing a
    killed process's tmp leftovers."""
    save, root, dead = tmp_path / "inbox", tmp_path / "md", _dead_pid()
    now = int(time.time())
    for directory in (save, root / "demo"):
        for sub in ("tmp", "new", "cur"):
            (directory / sub).mkdir(parents=True)
        (directory / "tmp" / f"{now}.M1P{dead}Q1.{_host()}").write_bytes(b"x" * 4096)
    async with LocalMailServer({"demo": "demo"}, root=root) as mail:
        assert list((root / "demo" / "tmp").iterdir()) == []
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "asyncnet.demos.mailbox",
            "--port", str(mail.pop3_address[1]), "--save", str(save),
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
        assert proc.returncode == 0, err
    assert b"saved 0 new message(s)" in out
    assert list((save / "tmp").iterdir()) == []


# -- UIDL n: both reply forms --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3 whqtswO00WBw418f9t5JxYwZ", (3, "whqtswO00WBw418f9t5JxYwZ")),  # RFC 1939
        ("whqtswO00WBw418f9t5JxYwZ", (3, "whqtswO00WBw418f9t5JxYwZ")),  # Twisted's
        ("17", (3, "17")),  # a unique-id that looks like a number
    ],
)
def test_uidl_reply_both_forms(text: str, expected: tuple[int, str]) -> None:
    """``+OK n uid`` (RFC 1939) and ``+OK uid`` (twisted.mail.pop3) both parse, for n."""
    assert parse_uidl_reply(text, 3) == expected


@pytest.mark.parametrize("text", ["4 abc", "", "3 a b", "3 " + "u" * 71, "a\x7fb"])
def test_uidl_reply_refuses_malformed(text: str) -> None:
    """Another message's number, extra words or a bad unique-id: a protocol error."""
    with pytest.raises(POP3ProtocolError):
        parse_uidl_reply(text, 3)


def test_aiosmtpd_internals_that_bounded_smtp_uses_are_there() -> None:
    """BoundedSMTP's DATA reader uses a few aiosmtpd internals (known for 1.4.x): fail
    here, by name, if an aiosmtpd release renames them."""
    for name in ("_call_handler_hook", "_create_envelope", "_cb_client_connected"):
        assert callable(getattr(AioSMTP, name, None)), f"aiosmtpd.smtp.SMTP.{name} is gone"
    source = inspect.getsource(AioSMTP._cb_client_connected)
    assert "self._reader = reader" in source
    assert "self._writer = writer" in source
