"""The embedded FTP server's commands for real clients: FEAT, SIZE, MDTM, NLST, OPTS, ...

Driven by stdlib ftplib (an independent client, in a thread, since the server runs on
the test's loop) and by raw control connections where the exact reply matters.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import ftplib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncnet.ftp import FTPClient, FTPServer

from .ftp_server_raw import control

pytestmark = pytest.mark.timeout(30)

USERS = {"guest": "s3cret"}
WHEN = calendar.timegm((2001, 2, 3, 4, 5, 6))  # 2001-02-03 04:05:06 UTC


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``root`` (served): files, a subdirectory, links in and out; ``outside`` beside it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret" * 1000)
    (root / "data.bin").write_bytes(b"d" * 12345)
    os.utime(root / "data.bin", (WHEN, WHEN))
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_bytes(b"inner\n")
    (root / "out_file").symlink_to(outside / "secret.txt")
    (root / "out_dir").symlink_to(outside, target_is_directory=True)
    (root / "in_file").symlink_to(Path("sub") / "inner.txt")
    return root


@contextlib.contextmanager
def logged_in(address: tuple[str, int], user: str = "guest") -> Iterator[ftplib.FTP]:
    ftp = ftplib.FTP()
    ftp.connect(*address, timeout=10)
    try:
        ftp.login(user, USERS.get(user, "x@example.org"))
        yield ftp
    finally:
        ftp.close()


async def in_thread(address: tuple[str, int], job: Callable[[ftplib.FTP], Any]) -> Any:
    """Run ``job`` on a logged-in ftplib session in a thread."""

    def run() -> Any:
        with logged_in(address) as ftp:
            return job(ftp)

    return await asyncio.to_thread(run)


def permanent_error(call: Callable[[], object]) -> str:
    with pytest.raises(ftplib.error_perm) as caught:
        call()
    return str(caught.value)


async def test_feat_lists_what_the_server_implements_and_needs_no_login(tree: Path) -> None:
    async with FTPServer(tree, users=USERS) as server, control(server.address) as ftp:
        reply = await ftp.send("FEAT")
    lines = reply.splitlines()
    assert lines[0] == "211-Features:"
    assert lines[-1] == "211 End"
    assert [line.strip() for line in lines[1:-1]] == [
        "EPRT",
        "EPSV",
        "MDTM",
        "MLST type*;size*;modify*;create*;",
        "PASV",
        "REST STREAM",
        "SIZE",
        "TVFS",
        "UTF8",
    ]
    assert all(line.startswith(" ") for line in lines[1:-1])  # RFC 2389: one space


async def test_every_feature_named_by_feat_is_answered(tree: Path) -> None:
    """No feature FEAT names gets 502: each is tried once."""
    async with FTPServer(tree, users=USERS) as server, control(server.address) as ftp:
        await ftp.login("guest", USERS["guest"])
        replies = {
            "EPRT": await ftp.send("EPRT |1|127.0.0.1|1|"),  # refused, but understood
            "EPSV": await ftp.send("EPSV"),
            "MDTM": await ftp.send("MDTM data.bin"),
            "MLST": await ftp.send("MLST data.bin"),
            "PASV": await ftp.send("PASV"),
            "REST": await ftp.send("REST 10"),
            "SIZE": await ftp.send("SIZE data.bin"),
            "UTF8": await ftp.send("OPTS UTF8 ON"),
        }
    assert {name: reply[:3] for name, reply in replies.items()} == {
        "EPRT": "501",
        "EPSV": "229",
        "MDTM": "213",
        "MLST": "250",
        "PASV": "227",
        "REST": "350",
        "SIZE": "213",
        "UTF8": "200",
    }


async def test_size_and_mdtm_answer_as_rfc_3659_says(tree: Path) -> None:
    def probe(ftp: ftplib.FTP) -> dict[str, object]:
        return {
            "size": ftp.size("data.bin"),
            "size in sub": ftp.size("/sub/inner.txt"),
            "size via inner link": ftp.size("in_file"),
            "mdtm": ftp.voidcmd("MDTM data.bin"),
            "size of a directory": permanent_error(lambda: ftp.size("sub")),
            "size of nothing": permanent_error(lambda: ftp.size("missing")),
            "size via link out": permanent_error(lambda: ftp.size("out_file")),
            "mdtm via link out": permanent_error(lambda: ftp.sendcmd("MDTM out_file")),
            "size through dir link": permanent_error(lambda: ftp.size("out_dir/secret.txt")),
        }

    async with FTPServer(tree, users=USERS) as server:
        got = await in_thread(server.address, probe)
    assert got["size"] == 12345
    assert got["size in sub"] == 6
    assert got["size via inner link"] == 6
    assert got["mdtm"] == "213 20010203040506"
    assert str(got["size of a directory"]).startswith("550")
    assert str(got["size of nothing"]).startswith("550")
    for refused in ("size via link out", "mdtm via link out", "size through dir link"):
        assert str(got[refused]).startswith("550 permission denied: the path leads outside")


async def test_size_and_mdtm_need_a_login(tree: Path) -> None:
    async with FTPServer(tree, users=USERS) as server, control(server.address) as ftp:
        assert (await ftp.send("SIZE data.bin")).startswith("530")
        assert (await ftp.send("MDTM data.bin")).startswith("530")
        assert (await ftp.send("EPSV")).startswith("530")
        assert (await ftp.send("PORT 127,0,0,1,200,10")).startswith("530")


async def test_nlst_lists_names_with_ftplib(tree: Path) -> None:
    def probe(ftp: ftplib.FTP) -> dict[str, list[str]]:
        listed: list[str] = []
        ftp.retrlines("NLST -la", listed.append)  # ls options, as some clients send
        return {
            "root": sorted(ftp.nlst()),
            "sub": ftp.nlst("sub"),
            "file": ftp.nlst("data.bin"),
            "with options": sorted(listed),
        }

    async with FTPServer(tree, users=USERS) as server:
        got = await in_thread(server.address, probe)
    names = ["data.bin", "in_file", "out_dir", "out_file", "sub"]
    assert got == {"root": names, "sub": ["inner.txt"], "file": ["data.bin"], "with options": names}


async def test_nlst_of_a_directory_out_of_the_root_is_refused(tree: Path) -> None:
    async with FTPServer(tree, users=USERS) as server:
        reply = await in_thread(
            server.address, lambda ftp: permanent_error(lambda: ftp.nlst("out_dir"))
        )
    assert reply.startswith("550 permission denied: the path leads outside")


async def test_nlst_without_a_data_connection_is_503(tree: Path) -> None:
    async with FTPServer(tree, users=USERS) as server, control(server.address) as ftp:
        await ftp.login("guest", USERS["guest"])
        assert (await ftp.send("NLST")).startswith("503")


async def test_mlsd_and_opts_mlst_with_ftplib(tree: Path) -> None:
    def probe(ftp: ftplib.FTP) -> tuple[dict[str, dict[str, str]], str, dict[str, dict[str, str]]]:
        every = dict(ftp.mlsd())
        chosen = ftp.sendcmd("OPTS MLST type;size;")
        fewer = dict(ftp.mlsd())
        return every, chosen, fewer

    async with FTPServer(tree, users=USERS) as server:
        every, chosen, fewer = await in_thread(server.address, probe)
    assert every["data.bin"]["type"] == "file"
    assert every["data.bin"]["size"] == "12345"
    assert every["data.bin"]["modify"] == "20010203040506"
    assert every["sub"]["type"] == "dir"
    assert every["out_file"] == {"type": "OS.unix=slink"}  # nothing of its target
    assert chosen == "200 MLST OPTS type;size;"
    assert fewer["data.bin"] == {"type": "file", "size": "12345"}


async def test_the_small_commands_real_clients_send(tree: Path) -> None:
    async with FTPServer(tree, users=USERS) as server, control(server.address) as ftp:
        await ftp.login("guest", USERS["guest"])
        replies = {
            line: await ftp.send(line)
            for line in (
                "NOOP",
                "ALLO 1000",
                "STRU F",
                "STRU R",
                "MODE S",
                "MODE B",
                "OPTS UTF8 OFF",
                "OPTS FOO",
                "SITE CHMOD 777 data.bin",
                "LIST -la",
            )
        }
        help_reply = await ftp.send("HELP")
    assert {line: reply[:3] for line, reply in replies.items()} == {
        "NOOP": "200",
        "ALLO 1000": "202",
        "STRU F": "200",
        "STRU R": "504",
        "MODE S": "200",
        "MODE B": "504",
        "OPTS UTF8 OFF": "504",
        "OPTS FOO": "501",
        "SITE CHMOD 777 data.bin": "502",
        "LIST -la": "503",  # understood: it wants a data connection first
    }
    assert help_reply.startswith("214-")
    assert "SIZE" in help_reply
    assert "EPRT" in help_reply


async def test_anonymous_users_get_size_and_nlst_too(tree: Path) -> None:
    def probe(ftp: ftplib.FTP) -> tuple[int | None, list[str]]:
        return ftp.size("data.bin"), ftp.nlst("sub")

    def run() -> tuple[int | None, list[str]]:
        with logged_in(server.address, "anonymous") as ftp:
            return probe(ftp)

    async with FTPServer(tree, anonymous=True) as server:
        assert await asyncio.to_thread(run) == (12345, ["inner.txt"])


async def test_asyncnet_client_reads_size_and_fingerprint(tree: Path) -> None:
    """The office demo's progress total is the sum of SIZE replies: with SIZE served,
    it is the files' real size (before, SIZE was 502 and the bar ran past its total)."""
    async with FTPServer(tree, users=USERS) as server:
        host, port = server.address
        async with FTPClient(host, port, user="guest", password=USERS["guest"]) as ftp:
            assert await ftp.size("data.bin") == 12345
            fingerprint = await ftp.fingerprint("data.bin")
    assert (fingerprint.size, fingerprint.modify) == (12345, "20010203040506")
