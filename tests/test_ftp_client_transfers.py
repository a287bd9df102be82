"""The FTP client's bulk-transfer paths against aioftp's server on 127.0.0.1:0.

``retrieve()`` and ``download()`` take each block straight from the data connection
(no task switch per block), reading pauses the socket while too much waits unread,
``store()`` of a file on disk goes out with ``sendfile(2)`` on plain FTP, and every
one of them keeps the byte count and sha256 exact.  Speed itself is measured in
``python -m benchmarks.transfers``, never asserted here.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asyncnet.errors import StateError
from asyncnet.ftp import FTPClient, FTPServer, TransferProgress
from asyncnet.ftp._datachannel import HIGH_WATER

pytestmark = pytest.mark.all_loops

USERS = {"guest": "s3cret"}
TRANSPORT_READ = 256 * 1024
"""The most one transport callback hands over (asyncio's and uvloop's read size)."""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
async def server(root: Path) -> AsyncIterator[FTPServer]:
    async with FTPServer(root, users=USERS) as running:
        yield running


def connect(server: FTPServer, **options: object) -> FTPClient:
    return FTPClient(*server.address, user="guest", password="s3cret", **options)  # type: ignore[arg-type]


@pytest.mark.timeout(30)
async def test_retrieve_blocks_are_bounded_by_block_size_and_intact(
    root: Path, server: FTPServer
) -> None:
    """A plain callback gets every byte in order, no block above block_size."""
    data = os.urandom(3 * 1024 * 1024 + 5)
    (root / "a.bin").write_bytes(data)
    sizes: list[int] = []
    digest = hashlib.sha256()

    def callback(chunk: bytes) -> None:
        sizes.append(len(chunk))
        digest.update(chunk)

    async with asyncio.timeout(20), connect(server, block_size=10_000) as ftp:
        assert await ftp.retrieve("a.bin", callback) == len(data)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert max(sizes) <= 10_000
    assert sum(sizes) == len(data)


@pytest.mark.timeout(30)
async def test_async_callback_is_awaited_for_every_block(root: Path, server: FTPServer) -> None:
    """A callback returning awaitables is awaited block by block, in order."""
    data = os.urandom(1_500_000)
    (root / "a.bin").write_bytes(data)
    received: list[bytes] = []

    async def callback(chunk: bytes) -> None:
        await asyncio.sleep(0)
        received.append(chunk)

    async with asyncio.timeout(20), connect(server) as ftp:
        assert await ftp.retrieve("a.bin", callback) == len(data)
    assert b"".join(received) == data


@pytest.mark.timeout(30)
async def test_callback_that_turns_async_half_way_is_a_state_error(
    root: Path, server: FTPServer
) -> None:
    """Plain values first, then a coroutine: StateError (no silently dropped await)."""
    (root / "a.bin").write_bytes(os.urandom(2_000_000))
    calls = 0

    async def later() -> None:
        pass

    def callback(chunk: bytes) -> object:
        nonlocal calls
        calls += 1
        return later() if calls == 2 else None

    async with asyncio.timeout(20), connect(server, block_size=4096) as ftp:
        with pytest.raises(StateError, match="returned an awaitable after"):
            await ftp.retrieve("a.bin", callback)
        assert await ftp.size("a.bin") in (2_000_000, None)  # still in step after ABOR


@pytest.mark.timeout(30)
async def test_a_slow_reader_pauses_the_socket_and_memory_stays_bounded(
    root: Path, server: FTPServer
) -> None:
    """Nothing read for a while: at most HIGH_WATER (plus one read) waits in memory."""
    data = os.urandom(12 * 1024 * 1024)
    (root / "big.bin").write_bytes(data)
    async with asyncio.timeout(20), connect(server) as ftp:
        async with ftp.open_read("big.bin") as reader:
            channel = reader._stream
            assert channel is not None
            # Wait (bounded by the timeout above) until the server has filled what we
            # allow: reading must then be paused, with the rest still at the server.
            paused = asyncio.Event()
            pause = channel._pause

            def pause_and_tell() -> None:
                pause()
                paused.set()

            channel._pause = pause_and_tell  # type: ignore[method-assign]
            if not channel._paused_reading:
                await paused.wait()
            assert HIGH_WATER < channel._buffered <= HIGH_WATER + TRANSPORT_READ
            # The server keeps sending as fast as it can: were the socket not paused,
            # more would arrive within a few turns of the loop.
            for _ in range(50):
                await asyncio.sleep(0)
            assert channel._paused_reading
            assert channel._buffered <= HIGH_WATER + TRANSPORT_READ
            received = bytearray()
            async for chunk in reader:
                received += chunk
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()


@pytest.mark.timeout(30)
async def test_store_from_a_path_is_exact_with_progress(
    root: Path, server: FTPServer, tmp_path: Path
) -> None:
    """A file on disk (sendfile(2) on asyncio's loop): every byte, progress to the end."""
    data = os.urandom(5 * 1024 * 1024 + 3)
    source = tmp_path / "up.bin"
    source.write_bytes(data)
    seen: list[tuple[int, bool]] = []

    def progress(state: TransferProgress) -> None:
        seen.append((state.done, state.finished))

    async with asyncio.timeout(20), connect(server) as ftp:
        assert await ftp.store("up.bin", source, progress=progress) == len(data)
        async with ftp.open_write("empty.bin") as writer:
            with open(os.devnull, "rb") as empty:
                assert await writer.sendfile(empty, 0, 1000) == 0
    assert (root / "up.bin").read_bytes() == data
    assert (root / "empty.bin").read_bytes() == b""
    assert seen[-1] == (len(data), True)
    assert len(seen) > 5  # one step per block, not one for the whole file


@pytest.mark.timeout(30)
async def test_download_through_the_fast_path_keeps_its_guarantees(
    root: Path, server: FTPServer, tmp_path: Path
) -> None:
    """download(): sha256 of what arrived, .part renamed, block_size bounds progress steps."""
    data = os.urandom(4 * 1024 * 1024 + 11)
    (root / "d.bin").write_bytes(data)
    steps: list[int] = []
    async with asyncio.timeout(20), connect(server, block_size=65536) as ftp:
        result = await ftp.download(
            "d.bin", tmp_path / "d.bin", progress=lambda state: steps.append(state.done)
        )
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "d.bin").read_bytes() == data
    assert not (tmp_path / "d.bin.part").exists()
    assert steps == sorted(steps)
    assert max(b - a for a, b in itertools.pairwise(steps)) <= 65536


@pytest.mark.timeout(30)
async def test_store_from_an_open_file_starts_where_it_stands(
    root: Path, server: FTPServer, tmp_path: Path
) -> None:
    """An open binary file: from its position on (as storbinary), left at its end after."""
    data = os.urandom(3 * 1024 * 1024 + 1)
    source = tmp_path / "up.bin"
    source.write_bytes(data)
    async with asyncio.timeout(20), connect(server) as ftp:
        with open(source, "rb") as file:
            file.seek(1000)
            assert await ftp.store("up.bin", file) == len(data) - 1000
            assert file.tell() == len(data)
        with open(source, "rb", buffering=0) as raw:
            assert await ftp.store("raw.bin", raw) == len(data)
    assert (root / "up.bin").read_bytes() == data[1000:]
    assert (root / "raw.bin").read_bytes() == data


@pytest.mark.timeout(30)
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
async def test_a_full_local_disk_is_the_os_error_not_a_network_error(
    root: Path, server: FTPServer, tmp_path: Path
) -> None:
    """Writes behind the receiver fail with ENOSPC: that OSError, raised as it is.

    ``.part`` is a link to /dev/full, where every write fails with ENOSPC; the final
    name never appears and the session stays usable (the transfer is aborted).
    """
    (root / "d.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    dest = tmp_path / "d.bin"
    (tmp_path / "d.bin.part").symlink_to("/dev/full")
    async with asyncio.timeout(20), connect(server) as ftp:
        with pytest.raises(OSError) as caught:
            await ftp.download("d.bin", dest)
        assert type(caught.value) is OSError
        assert caught.value.errno == errno.ENOSPC
        assert await ftp.size("d.bin") in (3 * 1024 * 1024, None)  # still in step
    assert not dest.exists()


async def test_a_callbacks_own_error_is_raised_as_it_is(root: Path, server: FTPServer) -> None:
    """retrieve(): what the callback raises comes out unchanged, and the session goes on."""
    (root / "a.bin").write_bytes(os.urandom(2_000_000))

    def callback(chunk: bytes) -> None:
        raise ConnectionRefusedError("the callback's own socket")

    async with asyncio.timeout(20), connect(server) as ftp:
        with pytest.raises(ConnectionRefusedError, match="the callback's own socket"):
            await ftp.retrieve("a.bin", callback)
        assert await ftp.size("a.bin") in (2_000_000, None)
