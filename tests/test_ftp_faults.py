"""FTP client against a misbehaving control server: RELIABILITY.md F1-F4."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tracemalloc
from pathlib import Path

import pytest

from asyncnet.errors import LineTooLong, LocalProtocolError, NetworkError, OperationTimeout
from asyncnet.ftp import (
    FTPClient,
    IncompleteTransfer,
    IntegrityError,
    ReplyTooLong,
    TransferProgress,
    TreeLimitExceeded,
    UnsafeRemotePath,
)

from .ftp_fakes import FakeFTP

pytestmark = pytest.mark.all_loops

DATA = bytes(range(256)) * 4000  # ~1 MB, every byte value


def client_for(fake: FakeFTP, **options: object) -> FTPClient:
    options.setdefault("command_timeout", 5)
    options.setdefault("idle_timeout", 5)
    return FTPClient(*fake.address, user="u", password="p", **options)  # type: ignore[arg-type]


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


async def test_pasv_reply_naming_another_host_is_pinned_to_the_control_peer(
    tmp_path: Path,
) -> None:
    """F1: a 227 naming 10.0.0.9 is ignored; the data connection goes to 127.0.0.1."""
    async with FakeFTP(files={"f.bin": DATA}, epsv=False, pasv_host="10,0,0,9") as fake:
        async with asyncio.timeout(10), client_for(fake) as ftp:
            result = await ftp.download("f.bin", tmp_path / "f.bin")
            assert ftp.passive_hosts_replaced == 1
    assert result.sha256 == hashlib.sha256(DATA).hexdigest()
    assert "PASV" in fake.commands
    assert [peer[0] for peer in fake.data_peers] == ["127.0.0.1"]
    # The autouse loopback guard would have failed the test on a connect to 10.0.0.9.


async def test_epsv_is_preferred_over_pasv(tmp_path: Path) -> None:
    """F1: EPSV names no host at all, so it is tried first."""
    async with FakeFTP(files={"f.bin": b"x" * 10}) as fake:
        async with asyncio.timeout(10), client_for(fake) as ftp:
            assert await ftp.retrieve("f.bin", lambda chunk: None) == 10
    assert "EPSV" in fake.commands
    assert "PASV" not in fake.commands


HOSTILE = ["../x", "a/../../x", "/etc/x", "..\\x", "x\x00y", "bell\x07", "a/b"]


@pytest.mark.parametrize("name", HOSTILE)
async def test_hostile_names_in_mlsd_are_refused_before_writing(tmp_path: Path, name: str) -> None:
    """F2: names that would leave the destination are refused; nothing is written."""
    listing = [b"type=file;size=3;modify=20240101000000; ok.txt"]
    listing.append(b"type=file;size=3;modify=20240101000000; " + name.encode())
    before = snapshot(tmp_path)
    async with FakeFTP(files={"ok.txt": b"abc"}, listings={"": listing}) as fake:
        async with asyncio.timeout(10), client_for(fake) as ftp:
            with pytest.raises(UnsafeRemotePath, match="unsafe name"):
                await ftp.download_tree("", tmp_path / "dest")
    assert snapshot(tmp_path) == before
    assert not any(c.startswith("RETR") for c in fake.commands)


async def test_hostile_name_in_list_fallback_is_refused(tmp_path: Path) -> None:
    """F2: the LIST fallback (no MLSD) goes through the same checks."""
    listing = [b"-rw-r--r--   1 owner group        3 Jan 01 00:00 ../escape"]
    async with FakeFTP(files={}, listings={"": listing}, mlsd=False) as fake:
        async with asyncio.timeout(10), client_for(fake) as ftp:
            with pytest.raises(UnsafeRemotePath):
                await ftp.download_tree("", tmp_path / "dest")
    assert "LIST" in fake.commands
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "dest").exists()


async def test_endless_directory_depth_hits_the_depth_cap(tmp_path: Path) -> None:
    """F2: d/d/d/... (the server would go on for ever) stops at max_depth."""
    async with FakeFTP(depth_loop=True) as fake:
        async with asyncio.timeout(20), client_for(fake) as ftp:
            with pytest.raises(TreeLimitExceeded, match="max_depth=8"):
                await ftp.download_tree("", tmp_path / "dest", max_depth=8)
    assert sum(c.startswith("MLSD") for c in fake.commands) == 9
    assert not (tmp_path / "dest").exists()


async def test_too_many_files_hits_the_count_cap(tmp_path: Path) -> None:
    """F2: the file-count cap stops a listing of thousands of names."""
    listing = [f"type=file;size=1;modify=1; f{n}".encode() for n in range(50)]
    async with FakeFTP(listings={"": listing}) as fake:
        async with asyncio.timeout(10), client_for(fake) as ftp:
            with pytest.raises(TreeLimitExceeded, match="max_files=10"):
                await ftp.download_tree("", tmp_path / "dest", max_files=10)


async def test_interrupted_download_leaves_part_then_resumes_with_rest(tmp_path: Path) -> None:
    """F3: the data connection closes at 40% (426): error, only .part; resume sends REST."""
    dest = tmp_path / "f.bin"
    async with FakeFTP(files={"f.bin": DATA}, abort_first_retr_at=0.4) as fake:
        async with asyncio.timeout(10), client_for(fake) as ftp:
            with pytest.raises(IncompleteTransfer) as caught:
                await ftp.download("f.bin", dest)
        assert caught.value.expected == len(DATA)
        assert caught.value.received == int(len(DATA) * 0.4)
        assert "426" in str(caught.value)
        assert sorted(os.listdir(tmp_path)) == ["f.bin.part", "f.bin.part.json"]
        part_size = (tmp_path / "f.bin.part").stat().st_size
        assert part_size == int(len(DATA) * 0.4)

        async with asyncio.timeout(10), client_for(fake) as ftp:
            result = await ftp.download("f.bin", dest, resume=True)
    assert f"REST {part_size}" in fake.commands
    assert result.resumed_from == part_size
    assert result.sha256 == hashlib.sha256(DATA).hexdigest()
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == result.sha256
    assert sorted(os.listdir(tmp_path)) == ["f.bin"]


async def test_resume_restarts_from_zero_when_the_remote_file_changed(tmp_path: Path) -> None:
    """F3: MDTM differs from when the .part was started, so no REST: start again."""
    dest = tmp_path / "f.bin"
    async with FakeFTP(files={"f.bin": DATA}, abort_first_retr_at=0.4) as fake:
        async with asyncio.timeout(10), client_for(fake) as ftp:
            with pytest.raises(IncompleteTransfer):
                await ftp.download("f.bin", dest)
        fake.mdtm = "20250101000000"
        fake.commands.clear()
        async with asyncio.timeout(10), client_for(fake) as ftp:
            result = await ftp.download("f.bin", dest, resume=True)
    assert not any(c.startswith("REST") for c in fake.commands)
    assert result.resumed_from == 0
    assert dest.read_bytes() == DATA


async def test_length_differing_from_size_is_an_integrity_error_without_rename(
    tmp_path: Path,
) -> None:
    """F4: SIZE says one thing, the data connection delivers less, yet 226 arrives."""
    async with FakeFTP(files={"f.bin": DATA}, short_retr_with_226=1000) as fake:
        async with asyncio.timeout(10), client_for(fake) as ftp:
            with pytest.raises(IntegrityError, match=f"after 1000 bytes, but SIZE is {len(DATA)}"):
                await ftp.download("f.bin", tmp_path / "f.bin")
    assert not (tmp_path / "f.bin").exists()
    assert (tmp_path / "f.bin.part").stat().st_size == 1000


async def test_wrong_sha256_is_an_integrity_error_without_rename(tmp_path: Path) -> None:
    """F4: an expected sha256 that does not match keeps the final name absent."""
    async with FakeFTP(files={"f.bin": DATA}) as fake:
        async with asyncio.timeout(10), client_for(fake) as ftp:
            with pytest.raises(IntegrityError, match="sha256"):
                await ftp.download("f.bin", tmp_path / "f.bin", sha256="0" * 64)
            ok = await ftp.download(
                "f.bin", tmp_path / "g.bin", sha256=hashlib.sha256(DATA).hexdigest()
            )
    assert not (tmp_path / "f.bin").exists()
    assert ok.path.read_bytes() == DATA


async def test_one_megabyte_reply_line_is_refused_with_bounded_memory() -> None:
    """F4: a 1 MB greeting line ends in ReplyTooLong; memory stays bounded."""
    greeting = b"220 " + b"x" * 1_000_000 + b"\r\n"
    async with FakeFTP(greeting=greeting) as fake:
        tracemalloc.start()
        try:
            async with asyncio.timeout(10):
                with pytest.raises(ReplyTooLong, match="longer than 8192 bytes"):
                    await client_for(fake).start()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 512 * 1024


async def test_endless_multiline_preliminary_reply_is_bounded() -> None:
    """F4: an endless "150-" continuation ends after max_reply_lines lines."""
    async with FakeFTP(files={"f.bin": b"abc"}, endless_preliminary=True) as fake:
        async with asyncio.timeout(10), client_for(fake, max_reply_lines=500) as ftp:
            with pytest.raises(ReplyTooLong, match="past 500 lines"):
                await ftp.retrieve("f.bin", lambda chunk: None)


@pytest.mark.parametrize(
    "call",
    [
        lambda ftp, t: ftp.retrieve("a\r\nDELE victim", lambda c: None),
        lambda ftp, t: ftp.retrieve_lines("a\nDELE victim", print),
        lambda ftp, t: ftp.store("a\rDELE victim", b"x"),
        lambda ftp, t: ftp.download("a\r\nDELE victim", t / "x"),
        lambda ftp, t: ftp.list("a\r\nDELE victim"),
        lambda ftp, t: ftp.mkdir("a\x00b"),
        lambda ftp, t: ftp.rename("ok", "b\r\nDELE victim"),
        lambda ftp, t: ftp.remove("a\nDELE victim"),
        lambda ftp, t: ftp.size("a\nDELE victim"),
    ],
)
async def test_cr_lf_nul_in_a_path_is_refused_before_sending(tmp_path: Path, call: object) -> None:
    """F4: CR/LF/NUL in any path argument -> ValueError before a byte is sent."""
    async with FakeFTP(files={"ok": b"x"}) as fake:
        async with asyncio.timeout(10), client_for(fake) as ftp:
            sent_before = list(fake.commands)
            with pytest.raises(LocalProtocolError) as caught:
                await call(ftp, tmp_path)  # type: ignore[operator]
            assert isinstance(caught.value, ValueError)
            assert fake.commands == sent_before
    assert not any("DELE" in c for c in fake.commands)


def test_cr_lf_in_credentials_is_refused_at_construction() -> None:
    """F4: the user name and password go into command lines too."""
    with pytest.raises(ValueError, match=r"must not contain (CR|LF)"):
        FTPClient(user="u\r\nDELE x")
    with pytest.raises(ValueError, match=r"must not contain (CR|LF)"):
        FTPClient(password="p\nSITE x")


async def test_server_that_never_replies_times_out_naming_the_phase() -> None:
    """A silent server: the connect phase ends with an OperationTimeout."""
    async with FakeFTP(greeting=b"") as fake:
        async with asyncio.timeout(10):
            with pytest.raises(OperationTimeout, match="during connect"):
                await client_for(fake, connect_timeout=0.3).start()


async def test_refused_connection_is_a_network_error() -> None:
    """Nobody listening: a NetworkError (an OSError) naming the peer."""
    async with FakeFTP() as fake:
        host, port = fake.address
    async with asyncio.timeout(10):
        with pytest.raises(NetworkError, match=f"connect with {host}:{port} failed"):
            await FTPClient(host, port, connect_timeout=2).start()


async def test_data_and_control_both_dropped_at_40_percent(tmp_path: Path) -> None:
    """F3: no reply at all after the data ends early: an error, .part kept, resume works."""
    dest = tmp_path / "f.bin"
    async with FakeFTP(files={"f.bin": DATA}, abort_first_retr_at=0.4, abort_reply=b"") as fake:
        async with asyncio.timeout(10), client_for(fake) as ftp:
            with pytest.raises(NetworkError, match="closed the control connection"):
                await ftp.download("f.bin", dest)
        assert sorted(os.listdir(tmp_path)) == ["f.bin.part", "f.bin.part.json"]
        async with asyncio.timeout(10), client_for(fake) as ftp:
            result = await ftp.download("f.bin", dest, resume=True)
    assert result.resumed_from == int(len(DATA) * 0.4)
    assert dest.read_bytes() == DATA


@pytest.mark.slow
async def test_stalled_data_connection_hits_the_idle_timeout(tmp_path: Path) -> None:
    """A server that stops sending mid-file: OperationTimeout naming the transfer."""
    async with FakeFTP(files={"f.bin": DATA}, stall_retr_after=1000) as fake:
        async with (
            asyncio.timeout(10),
            client_for(fake, idle_timeout=0.3, command_timeout=0.5) as ftp,
        ):
            with pytest.raises(OperationTimeout, match=r"during RETR f\.bin \(data\)"):
                await ftp.download("f.bin", tmp_path / "f.bin")
    assert not (tmp_path / "f.bin").exists()
    assert (tmp_path / "f.bin.part").stat().st_size == 1000


async def test_cancelled_download_closes_the_session_cleanly(tmp_path: Path) -> None:
    """Cancelling mid-transfer: the session is closed (not left half-way), nothing leaks."""
    async with FakeFTP(files={"f.bin": DATA}, stall_retr_after=1000) as fake:
        async with client_for(fake) as ftp:
            receiving = asyncio.Event()

            def progress(state: TransferProgress) -> None:
                if state.done:
                    receiving.set()

            download = ftp.download("f.bin", tmp_path / "f.bin", progress=progress)
            task = asyncio.ensure_future(download)
            async with asyncio.timeout(10):
                await receiving.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(NetworkError, match="not usable"):
                await ftp.size("f.bin")


async def test_listing_line_without_end_is_bounded(tmp_path: Path) -> None:
    """F4: a listing that is one endless line ends in LineTooLong, not unbounded memory."""
    listing = [b"type=file;size=1; " + b"x" * 100_000]
    async with FakeFTP(listings={"": listing}) as fake:
        async with asyncio.timeout(10), client_for(fake) as ftp:
            with pytest.raises(LineTooLong):
                await ftp.list()
            assert (await ftp.list("elsewhere")) == []  # the session is still in step
