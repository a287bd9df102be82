"""The FTP client against aioftp's server on 127.0.0.1:0 (real sockets, real server)."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aioftp
import pytest

from asyncnet.errors import AsyncNetError
from asyncnet.ftp import (
    FTPAuthError,
    FTPClient,
    FTPPermanentError,
    FTPReplyError,
    FTPServer,
    TransferProgress,
)
from asyncnet.testing import can_bind_ipv6

pytestmark = pytest.mark.all_loops

USERS = {"guest": "s3cret"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    (path / "notes.txt").write_bytes(b"first line\r\nsecond line\r\nno newline at end")
    (path / "sub").mkdir()
    (path / "sub" / "inner.bin").write_bytes(os.urandom(3000))
    return path


@pytest.fixture
async def server(root: Path) -> AsyncIterator[FTPServer]:
    async with FTPServer(root, users=USERS) as running:
        yield running


def connect(server: FTPServer, **options: object) -> FTPClient:
    return FTPClient(*server.address, user="guest", password="s3cret", **options)  # type: ignore[arg-type]


class Writer:
    """The tutorial's callable Writer, unchanged: a file opened for writing."""

    def __init__(self, path: Path) -> None:
        self.f = open(path, "wb")  # noqa: SIM115 - the tutorial's shape

    def __call__(self, data: bytes) -> None:
        self.f.write(data)

    def close(self) -> None:
        self.f.close()


@pytest.mark.slow
async def test_twenty_megabytes_round_trip_intact(
    root: Path, server: FTPServer, tmp_path: Path
) -> None:
    """A 20 MB file stored and downloaded again has the same SHA-256."""
    data = os.urandom(20 * 1024 * 1024)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    async with asyncio.timeout(30), connect(server) as ftp:
        assert await ftp.store("big.bin", source) == len(data)
        result = await ftp.download("big.bin", tmp_path / "out" / "big.bin")
    digest = hashlib.sha256(data).hexdigest()
    assert hashlib.sha256((root / "big.bin").read_bytes()).hexdigest() == digest
    assert result.sha256 == digest
    assert result.size == len(data)
    assert (tmp_path / "out" / "big.bin").read_bytes() == data
    assert sorted(os.listdir(tmp_path / "out")) == ["big.bin"]


async def test_tutorial_writer_and_async_callbacks(
    root: Path, server: FTPServer, tmp_path: Path
) -> None:
    """retrbinary's callable Writer works unchanged; so does an async callback."""
    writer = Writer(tmp_path / "copy.bin")
    received: list[bytes] = []

    async def collect(chunk: bytes) -> None:
        received.append(chunk)

    async with asyncio.timeout(10), connect(server) as ftp:
        count = await ftp.retrieve("sub/inner.bin", writer)
        writer.close()
        await ftp.retrieve("sub/inner.bin", collect)
    expected = (root / "sub" / "inner.bin").read_bytes()
    assert count == len(expected)
    assert (tmp_path / "copy.bin").read_bytes() == expected
    assert b"".join(received) == expected


async def test_retrieve_lines_calls_back_once_per_line(server: FTPServer) -> None:
    """retrlines: one call per line, without the line end."""
    lines: list[str] = []
    async with asyncio.timeout(10), connect(server) as ftp:
        assert await ftp.retrieve_lines("notes.txt", lines.append) == 3
    assert lines == ["first line", "second line", "no newline at end"]


async def test_store_accepts_file_bytes_and_async_iterators(root: Path, server: FTPServer) -> None:
    """storbinary from an open file; also bytes and an async iterator."""

    async def chunks() -> AsyncIterator[bytes]:
        for n in range(5):
            yield bytes([n]) * 1000

    async with asyncio.timeout(10), connect(server) as ftp:
        assert await ftp.store("a.bin", io.BytesIO(b"from a file")) == 11
        assert await ftp.store("b.bin", b"plain bytes") == 11
        assert await ftp.store("c.bin", chunks()) == 5000
    assert (root / "a.bin").read_bytes() == b"from a file"
    assert (root / "b.bin").read_bytes() == b"plain bytes"
    assert (root / "c.bin").read_bytes() == b"".join(bytes([n]) * 1000 for n in range(5))


async def test_streams_list_and_file_operations(root: Path, server: FTPServer) -> None:
    """open_write/open_read streams, then list, mkdir, rename, remove, rmdir."""
    async with asyncio.timeout(10), connect(server) as ftp:
        async with ftp.open_write("streamed.txt") as out:
            for word in (b"spam ", b"and ", b"eggs"):
                await out.write(word)
        async with ftp.open_read("streamed.txt") as source:
            assert b"".join([chunk async for chunk in source]) == b"spam and eggs"
        await ftp.mkdir("new")
        await ftp.rename("streamed.txt", "new/moved.txt")
        names = {entry.name: entry for entry in await ftp.list("new")}
        assert names["moved.txt"].type == "file"
        assert names["moved.txt"].size == len(b"spam and eggs")
        top = {entry.name: entry.type for entry in await ftp.list()}
        assert top == {"notes.txt": "file", "sub": "dir", "new": "dir"}
        assert (await ftp.fingerprint("new/moved.txt")).size == 13
        await ftp.remove("new/moved.txt")
        await ftp.rmdir("new")
    assert sorted(os.listdir(root)) == ["notes.txt", "sub"]


async def test_ten_parallel_downloads_on_one_loop(
    root: Path, server: FTPServer, tmp_path: Path
) -> None:
    """Ten clients download ten different files at once; every file is intact."""
    files = {f"f{n}.bin": os.urandom(200_000 + n) for n in range(10)}
    for name, data in files.items():
        (root / name).write_bytes(data)

    async def fetch(name: str) -> str:
        async with connect(server) as ftp:
            return (await ftp.download(name, tmp_path / "out" / name)).sha256

    async with asyncio.timeout(30):
        async with asyncio.TaskGroup() as group:
            tasks = {name: group.create_task(fetch(name)) for name in files}
    for name, data in files.items():
        assert tasks[name].result() == hashlib.sha256(data).hexdigest()
        assert (tmp_path / "out" / name).read_bytes() == data


async def test_progress_callback_sees_every_byte(
    root: Path, server: FTPServer, tmp_path: Path
) -> None:
    """The plain progress callback: totals known, done grows to the size, finished last."""
    data = os.urandom(500_000)
    (root / "p.bin").write_bytes(data)
    seen: list[tuple[int, int | None, bool]] = []

    def progress(state: TransferProgress) -> None:
        seen.append((state.done, state.total, state.finished))

    async with asyncio.timeout(10), connect(server, block_size=8192) as ftp:
        await ftp.download("p.bin", tmp_path / "p.bin", progress=progress)
        seen_download = list(seen)
        seen.clear()
        await ftp.store("q.bin", data, progress=progress)
    for trace in (seen_download, seen):
        assert trace[-1] == (len(data), len(data), True)
        assert [done for done, _, _ in trace] == sorted(done for done, _, _ in trace)
        assert len(trace) > 10


class Interrupted(Exception):
    """Stands for Ctrl-C or a lost network in the middle of a transfer."""


async def test_interrupted_download_resumes_against_a_real_server(
    root: Path, server: FTPServer, tmp_path: Path
) -> None:
    """F3 on aioftp: stop a download half-way, reconnect, resume with REST, same hash."""
    data = os.urandom(2_000_000)
    (root / "r.bin").write_bytes(data)
    dest = tmp_path / "r.bin"

    def stop_half_way(state: TransferProgress) -> None:
        if state.done >= len(data) // 2 and not state.finished:
            raise Interrupted("simulated interruption")

    async with asyncio.timeout(10), connect(server, block_size=65536) as ftp:
        with pytest.raises(Interrupted):
            await ftp.download("r.bin", dest, progress=stop_half_way)
    assert not dest.exists()
    kept = (tmp_path / "r.bin.part").stat().st_size
    assert len(data) // 2 <= kept < len(data)
    async with asyncio.timeout(10), connect(server) as ftp:
        result = await ftp.download("r.bin", dest, resume=True)
    assert result.resumed_from == kept
    assert dest.read_bytes() == data


@pytest.mark.slow
async def test_bad_credentials_are_an_auth_error_naming_the_reply(server: FTPServer) -> None:
    """Wrong password: FTPAuthError with the server's code and text."""
    client = FTPClient(*server.address, user="guest", password="wrong")
    async with asyncio.timeout(10):
        with pytest.raises(FTPAuthError) as caught:
            await client.start()
    assert caught.value.code == "530"
    assert "login as 'guest'" in str(caught.value)


async def test_missing_file_is_a_permanent_reply_error(server: FTPServer, tmp_path: Path) -> None:
    """RETR of a missing file: 550 with the server's text; no local file appears."""
    async with asyncio.timeout(10), connect(server) as ftp:
        with pytest.raises(FTPPermanentError) as caught:
            await ftp.retrieve("nope.bin", lambda chunk: None)
        assert caught.value.code == "550"
        assert "RETR nope.bin" in str(caught.value)
        with pytest.raises(FTPPermanentError):
            await ftp.download("nope.bin", tmp_path / "nope.bin")
        assert await ftp.retrieve_lines("notes.txt", lambda line: None) == 3  # still usable
    assert os.listdir(tmp_path) == ["root"]


async def test_permission_denied_is_reported_with_the_servers_reply(root: Path) -> None:
    """A read-only account: STOR fails with the server's 550 text."""
    async with FTPServer(root, users=USERS, writable=False) as server:
        async with asyncio.timeout(10), connect(server) as ftp:
            with pytest.raises(FTPPermanentError, match="550 permission denied") as caught:
                await ftp.store("x.bin", b"data")
    assert caught.value.permanent
    assert not (root / "x.bin").exists()


class FullDisk(aioftp.PathIO):
    """The server's filesystem layer on a full disk: every write fails with ENOSPC."""

    @aioftp.pathio.universal_exception
    async def write(self, file: object, data: bytes) -> None:  # type: ignore[override]
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


async def test_full_disk_on_the_server_is_reported_with_its_reply(root: Path) -> None:
    """STOR onto a full disk: an FTPReplyError carrying the server's 4xx reply."""
    async with FTPServer(root, users=USERS, path_io_factory=FullDisk) as server:
        async with asyncio.timeout(10), connect(server) as ftp:
            with pytest.raises(FTPReplyError) as caught:
                await ftp.store("x.bin", os.urandom(100_000))
    assert caught.value.code.startswith("4")
    assert "file system error" in str(caught.value)


async def test_using_a_client_that_was_never_started_is_a_clear_error() -> None:
    """Forgetting start() (or `async with`) is an AsyncNetError, not an AttributeError."""
    with pytest.raises(AsyncNetError, match="not connected"):
        await FTPClient().size("x")


@pytest.mark.skipif(not can_bind_ipv6(), reason="no IPv6 loopback (::1) on this machine")
async def test_ipv6_loopback_uses_epsv(root: Path, tmp_path: Path) -> None:
    """Over ::1 the data connection comes from EPSV to the control peer, ::1."""
    async with FTPServer(root, host="::1", users=USERS) as server:
        assert server.address[0] == "::1"
        async with asyncio.timeout(10), connect(server) as ftp:
            result = await ftp.download("sub/inner.bin", tmp_path / "inner.bin")
            assert ftp.peer[0] == "::1"
    assert result.path.read_bytes() == (root / "sub" / "inner.bin").read_bytes()


async def test_leaving_a_stream_early_keeps_the_session_usable(
    root: Path, server: FTPServer
) -> None:
    """Stop reading after one block: the server's 426/226 is read and the session goes on."""
    (root / "long.bin").write_bytes(os.urandom(4_000_000))
    async with asyncio.timeout(10), connect(server, block_size=4096) as ftp:
        async with ftp.open_read("long.bin") as source:
            assert len(await source.read()) <= 4096
        lines: list[str] = []
        assert await ftp.retrieve_lines("notes.txt", lines.append) == 3
        assert lines[0] == "first line"
