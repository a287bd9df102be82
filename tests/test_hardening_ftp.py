"""FTP under attack: the embedded server's root, logins and anonymous access; the
client's size bound; peer text shown on a terminal.

The server is asyncnet's FTPServer (aioftp) on 127.0.0.1:0, driven by ftplib (an
independent client, in a thread) or by raw control connections; the client side runs
against the scripted fake server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ftplib
import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncnet import ftp as ftp_api
from asyncnet.errors import ConfigurationError
from asyncnet.ftp import FTPClient, FTPPermanentError, FTPServer, IntegrityError
from asyncnet.servers import LoginThrottle

from .ftp_fakes import FakeFTP
from .helpers import ROOT

USERS = {"guest": "s3cret"}
SECRET = b"outside the root: must never be served\n" * 100


# -- the server's root and symlinks ----------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``root`` (served) beside ``outside``; links in root lead out, and one inside."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "empty").mkdir()
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_bytes(b"inside\n")
    (root / "mine.txt").write_bytes(b"mine\n")
    (root / "out_dir").symlink_to(outside, target_is_directory=True)
    (root / "out_file").symlink_to(outside / "secret.txt")
    (root / "dangling").symlink_to(outside / "new.txt")  # STOR would create it outside
    (root / "in_dir").symlink_to(root / "sub", target_is_directory=True)
    (root / "in_file").symlink_to(Path("sub") / "inner.txt")  # relative, stays inside
    return tmp_path


def snapshot(path: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(path.rglob("*"))
    }


@contextlib.contextmanager
def ftplib_session(address: tuple[str, int], user: str, password: str) -> Iterator[ftplib.FTP]:
    ftp = ftplib.FTP()
    ftp.connect(*address, timeout=10)
    try:
        ftp.login(user, password)
        yield ftp
    finally:
        ftp.close()


async def in_thread(address: tuple[str, int], job: Callable[[ftplib.FTP], Any]) -> Any:
    """Run ``job`` on a logged-in ftplib session in a thread (the server is on our loop)."""

    def run() -> Any:
        with ftplib_session(address, "guest", USERS["guest"]) as ftp:
            return job(ftp)

    return await asyncio.to_thread(run)


def refused(ftp: ftplib.FTP, call: Callable[[], object]) -> str:
    """The 5xx reply ``call`` gets (fails the test if it succeeds)."""
    with pytest.raises(ftplib.error_perm) as caught:
        call()
    return str(caught.value)


async def test_symlinks_out_of_the_root_are_refused_for_every_path_command(tree: Path) -> None:
    """RETR, STOR, APPE, LIST, MLSD, MLST, CWD, DELE, RMD, MKD, RNFR and RNTO on a
    path that resolves outside the root: 550, nothing read or written outside."""
    root, outside = tree / "root", tree / "outside"
    before = snapshot(outside)

    def attempts(ftp: ftplib.FTP) -> dict[str, str]:
        served: list[bytes] = []

        def retr(path: str) -> Callable[[], object]:
            return lambda: ftp.retrbinary(f"RETR {path}", served.append)

        def stor(verb: str, path: str) -> Callable[[], object]:
            return lambda: ftp.storbinary(f"{verb} {path}", io.BytesIO(b"written outside"))

        cases: dict[str, Callable[[], object]] = {
            "RETR link": retr("out_file"),
            "RETR via dir link": retr("out_dir/secret.txt"),
            "STOR via dir link": stor("STOR", "out_dir/new.txt"),
            "STOR dangling link": stor("STOR", "dangling"),
            "APPE link": stor("APPE", "out_file"),
            "LIST dir link": lambda: ftp.retrlines("LIST out_dir", lambda _: None),
            "MLSD dir link": lambda: list(ftp.mlsd("out_dir")),
            "MLST link": lambda: ftp.sendcmd("MLST out_file"),
            "CWD dir link": lambda: ftp.cwd("out_dir"),
            "DELE link": lambda: ftp.delete("out_file"),
            "RMD via dir link": lambda: ftp.rmd("out_dir/empty"),
            "MKD via dir link": lambda: ftp.mkd("out_dir/made"),
            "RNFR link": lambda: ftp.sendcmd("RNFR out_file"),
        }
        replies = {name: refused(ftp, call) for name, call in cases.items()}
        ftp.sendcmd("RNFR mine.txt")
        replies["RNTO via dir link"] = refused(ftp, lambda: ftp.sendcmd("RNTO out_dir/moved"))
        assert not served, "bytes from outside the root were served"
        return replies

    async with FTPServer(root, users=USERS) as server:
        replies = await in_thread(server.address, attempts)
    assert {name: reply[:3] for name, reply in replies.items()} == dict.fromkeys(replies, "550")
    assert "outside the served directory" in replies["RETR link"]
    assert snapshot(outside) == before
    assert (root / "mine.txt").read_bytes() == b"mine\n"


async def test_a_nul_byte_in_a_path_is_a_syntax_error_and_the_session_goes_on(
    tree: Path,
) -> None:
    def probe(ftp: ftplib.FTP) -> tuple[str, str]:
        return refused(ftp, lambda: ftp.sendcmd("MLST mine\x00.txt")), ftp.sendcmd("MLST mine.txt")

    async with FTPServer(tree / "root", users=USERS) as server:
        bad, good = await in_thread(server.address, probe)
    assert bad.startswith("501 ")
    assert good.startswith("250")


async def test_symlinks_that_stay_inside_the_root_are_followed(tree: Path) -> None:
    """A link to a directory or file inside the root works for RETR, CWD, LIST, STOR."""
    root = tree / "root"

    def use(ftp: ftplib.FTP) -> tuple[bytes, bytes, list[str]]:
        direct = io.BytesIO()
        ftp.retrbinary("RETR in_file", direct.write)
        ftp.storbinary("STOR in_dir/stored.txt", io.BytesIO(b"stored\n"))
        ftp.cwd("in_dir")
        via_dir = io.BytesIO()
        ftp.retrbinary("RETR inner.txt", via_dir.write)
        names: list[str] = []
        ftp.retrlines("LIST", names.append)
        return direct.getvalue(), via_dir.getvalue(), names

    async with FTPServer(root, users=USERS) as server:
        direct, via_dir, names = await in_thread(server.address, use)
    assert direct == via_dir == b"inside\n"
    assert (root / "sub" / "stored.txt").read_bytes() == b"stored\n"
    assert sorted(line.rsplit(" ", 1)[1] for line in names) == ["inner.txt", "stored.txt"]


async def test_a_listing_does_not_show_what_a_link_out_of_the_root_points_to(tree: Path) -> None:
    """LIST/MLSD of the root name the link but not its target's size or type."""
    async with FTPServer(tree / "root", users=USERS) as server:
        facts = await in_thread(server.address, lambda ftp: dict(ftp.mlsd("")))
    assert facts["out_file"].get("size") != str(len(SECRET))
    assert facts["out_dir"].get("type") != "dir"
    assert (facts["in_file"]["type"], facts["in_file"]["size"]) == ("file", "7")


async def test_the_asyncnet_client_gets_a_permanent_error_for_a_link_out(
    tree: Path, tmp_path: Path
) -> None:
    """download() of a link out of the root: FTPPermanentError 550, no local file."""
    async with FTPServer(tree / "root", users=USERS) as server:
        async with (
            asyncio.timeout(10),
            FTPClient(*server.address, user="guest", password="s3cret") as ftp,
        ):
            with pytest.raises(FTPPermanentError) as caught:
                await ftp.download("out_file", tmp_path / "got.txt")
            assert (await ftp.fingerprint("mine.txt")).size == 5  # the session goes on
    assert caught.value.code == "550"
    assert not (tmp_path / "got.txt").exists()
    assert not (tmp_path / "got.txt.part").exists()


# -- logins: anonymous only when asked for, and read-only ---------------------------------


@pytest.mark.parametrize("users", [None, {}])
def test_a_server_without_users_is_refused_unless_anonymous_is_asked_for(
    tmp_path: Path, users: dict[str, str] | None
) -> None:
    with pytest.raises(ConfigurationError, match="anonymous=True"):
        FTPServer(tmp_path, users=users)


async def test_anonymous_access_is_read_only(tmp_path: Path) -> None:
    """anonymous=True: RETR and LIST work; STOR, APPE, DELE, MKD, RMD, RNFR get 550."""
    (tmp_path / "pub.txt").write_bytes(b"public\n")
    (tmp_path / "dir").mkdir()
    before = snapshot(tmp_path)

    def session(address: tuple[str, int]) -> tuple[bytes, dict[str, str]]:
        with ftplib_session(address, "anonymous", "guest@") as ftp:
            got = io.BytesIO()
            ftp.retrbinary("RETR pub.txt", got.write)
            data = io.BytesIO(b"upload")
            cases: dict[str, Callable[[], object]] = {
                "STOR": lambda: ftp.storbinary("STOR new.txt", data),
                "APPE": lambda: ftp.storbinary("APPE pub.txt", data),
                "DELE": lambda: ftp.delete("pub.txt"),
                "MKD": lambda: ftp.mkd("made"),
                "RMD": lambda: ftp.rmd("dir"),
                "RNFR": lambda: ftp.sendcmd("RNFR pub.txt"),
            }
            return got.getvalue(), {verb: refused(ftp, call) for verb, call in cases.items()}

    async with FTPServer(tmp_path, anonymous=True) as server:
        got, replies = await asyncio.to_thread(session, server.address)
    assert got == b"public\n"
    assert {verb: reply[:3] for verb, reply in replies.items()} == dict.fromkeys(replies, "550")
    assert snapshot(tmp_path) == before


async def test_anonymous_beside_named_users_leaves_the_named_users_writable(
    tmp_path: Path,
) -> None:
    async with FTPServer(tmp_path, users=USERS, anonymous=True) as server:
        async with asyncio.timeout(10):
            async with FTPClient(*server.address, user="guest", password="s3cret") as ftp:
                await ftp.store("up.txt", b"named")
            async with FTPClient(*server.address) as ftp:  # anonymous
                with pytest.raises(FTPPermanentError, match="550"):
                    await ftp.store("anon.txt", b"anonymous")
                assert (await ftp.fingerprint("up.txt")).size == 5
    assert not (tmp_path / "anon.txt").exists()


# -- logins: guessing --------------------------------------------------------------------


async def _read_reply(reader: asyncio.StreamReader) -> bytes:
    line = await reader.readline()
    while line[3:4] == b"-":  # a multi-line reply: read to its last line
        line = await reader.readline()
    return line


async def guess(address: tuple[str, int], until: float, tally: dict[bytes, int]) -> None:
    """One guessing connection: USER/PASS with wrong passwords until ``until`` (loop
    time), at most 500 tries; each reply's code counted in ``tally``."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(*address)
    try:
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout_at(until):
                await _read_reply(reader)  # 220
                for n in range(500):
                    if loop.time() >= until:
                        break
                    for line in (b"USER guest\r\n", f"PASS wrong-{n}\r\n".encode()):
                        writer.write(line)
                        reply = await _read_reply(reader)
                        code = reply[:3] or b"EOF"
                        tally[code] = tally.get(code, 0) + 1
                        if code in (b"421", b"EOF"):
                            return
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def guessing_run(server: FTPServer, connections: int, seconds: float) -> dict[bytes, int]:
    tally: dict[bytes, int] = {}
    until = asyncio.get_running_loop().time() + seconds
    async with asyncio.TaskGroup() as group:
        for _ in range(connections):
            group.create_task(guess(server.address, until, tally))
    return tally


@pytest.mark.timeout(30)
@pytest.mark.slow
async def test_forty_parallel_guessers_get_a_handful_of_password_checks(tmp_path: Path) -> None:
    """The default penalty is per peer, across connections: at most two password checks
    in two seconds from 40 connections (aioftp alone answered thousands a second)."""
    async with FTPServer(tmp_path, users=USERS) as server:
        tally = await guessing_run(server, 40, 2.0)
        assert 1 <= tally.get(b"530", 0) <= 2, tally
        assert isinstance(server.login_throttle, LoginThrottle)
        assert server.login_throttle.failed_logins <= 2


@pytest.mark.timeout(30)
@pytest.mark.slow
async def test_a_locked_out_peer_gets_421_and_is_disconnected(tmp_path: Path) -> None:
    """With a small penalty, new attempts past max_delay are refused unchecked (421)."""
    throttle = LoginThrottle(first_delay=0.05, max_delay=0.2, service="ftp")
    async with FTPServer(tmp_path, users=USERS, login_throttle=throttle) as server:
        tally = await guessing_run(server, 40, 1.0)
    assert tally.get(b"530", 0) <= 8, tally
    assert tally.get(b"421", 0) >= 1, tally
    assert throttle.refused_logins >= 1


@pytest.mark.slow
async def test_unknown_user_names_are_not_told_apart_from_wrong_passwords(
    tmp_path: Path,
) -> None:
    """USER answers 331 for any name, so names cannot be guessed without the penalty."""
    async with FTPServer(tmp_path, users=USERS) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        try:
            async with asyncio.timeout(10):
                await _read_reply(reader)
                writer.write(b"USER nobody-here\r\n")
                user_reply = await _read_reply(reader)
                writer.write(b"PASS whatever\r\n")
                pass_reply = await _read_reply(reader)
        finally:
            writer.close()
            await writer.wait_closed()
    assert user_reply.startswith(b"331 ")
    assert pass_reply.startswith(b"530 ")


async def test_the_right_password_logs_in_and_resets_the_penalty(tmp_path: Path) -> None:
    throttle = LoginThrottle(first_delay=0.01, max_delay=0.05)
    async with FTPServer(tmp_path, users=USERS, login_throttle=throttle) as server:
        async with asyncio.timeout(10):
            with pytest.raises(FTPPermanentError, match="530"):
                await FTPClient(*server.address, user="guest", password="nope").start()
            assert throttle.failures(("127.0.0.1", 0)) == 1
            async with FTPClient(*server.address, user="guest", password="s3cret") as ftp:
                assert await ftp.list() == []
            assert throttle.failures(("127.0.0.1", 0)) == 0


# -- the client: a download stops one byte past SIZE -------------------------------------


async def test_download_stops_one_byte_past_the_announced_size(tmp_path: Path) -> None:
    """SIZE says 1000, the data connection sends 5 MB: OversizedTransfer after 1001."""
    big = os.urandom(5_000_000)
    async with FakeFTP(files={"f.bin": big}, size_override={"f.bin": 1000}) as fake:
        async with asyncio.timeout(10):
            client = FTPClient(*fake.address, user="u", password="p", command_timeout=5)
            async with client as ftp:
                with pytest.raises(IntegrityError) as caught:
                    await ftp.download("f.bin", tmp_path / "f.bin")
    assert not (tmp_path / "f.bin").exists()
    assert (tmp_path / "f.bin.part").stat().st_size == 1001
    assert (tmp_path / "f.bin.part").read_bytes() == big[:1001]
    error = caught.value
    assert isinstance(error, ftp_api.OversizedTransfer), error
    assert (error.expected, error.received) == (1000, 1001)
    assert "SIZE is 1000" in str(error)
    assert "1001" in str(error)


# -- peer text on the user's terminal ------------------------------------------------------

HOSTILE_NAME = "\x1b]0;owned\x07\x1b[2Jevil\x9b31m\u202etxt.exe".encode()


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncnet.demos.ftp", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
async def test_demo_escapes_control_bytes_in_listing_names() -> None:
    """``--server``: names (and MLSD types) from a hostile server are shown escaped."""
    listing = [
        b"type=file;size=3;modify=20240101000000; " + HOSTILE_NAME,
        b"type=\x1b[5mfile;size=3;modify=20240101000000; plain.txt",
    ]
    async with FakeFTP(listings={"": listing}) as fake:
        host, port = fake.address
        result = await asyncio.to_thread(run_demo, "--server", f"{host}:{port}")
    assert result.returncode == 0, result.stderr
    for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert raw not in result.stdout, result.stdout
    assert "\\x1b]0;owned\\x07\\x1b[2Jevil\\x9b31m\\u202etxt.exe" in result.stdout
    assert "plain.txt" in result.stdout


@pytest.mark.slow
async def test_demo_escapes_control_bytes_in_a_server_reply() -> None:
    async with FakeFTP(replies={"MLSD": b"550 \x1b[2Jno \x1b]0;x\x07listing\r\n"}) as fake:
        host, port = fake.address
        result = await asyncio.to_thread(run_demo, "--server", f"{host}:{port}")
    assert result.returncode == 1
    assert "\x1b" not in result.stderr
    assert "\x07" not in result.stderr
    assert "550 \\x1b[2Jno" in result.stderr


async def test_reply_errors_escape_control_bytes_from_the_server() -> None:
    """FTPReplyError's message is printable whatever the server's text was."""
    async with FakeFTP(
        replies={"SIZE": "550 \x1b[2Jgone\x9b\r\n".encode(), "MLST": b"500 no\r\n"}
    ) as fake:
        async with asyncio.timeout(10), FTPClient(*fake.address, user="u", password="p") as ftp:
            with pytest.raises(FTPPermanentError) as caught:
                await ftp.size("x")
    assert caught.value.text == "\x1b[2Jgone\x9b"  # kept as sent, for programs
    assert str(caught.value).endswith("replied 550 \\x1b[2Jgone\\x9b")
