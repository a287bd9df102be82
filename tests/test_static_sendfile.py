"""Static files through the kernel's sendfile(): on both loops, over keep-alive, never on TLS.

Large files go out with ``sendfile()`` (the stdlib loop's own, or asyncnet's for
uvloop, which has none); small ones are answered from memory in one write; a TLS
transport must never see ``sendfile()`` on its raw socket (the client would get the
file in clear text inside a TLS stream).  ``os.sendfile`` is wrapped to count its
calls, and still does the sending: the network is real, on 127.0.0.1 port 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from asyncnet.web import StaticFiles, web_server
from asyncnet.web._sendfile import send_file, wait_flushed

from .web_helpers import parse_response, raw_get

pytestmark = [pytest.mark.timeout(60), pytest.mark.all_loops]

BIG = 6 * 1024 * 1024 + 12345  # beyond every socket buffer, and not a round number


@pytest.fixture
def root(tmp_path: Path) -> Path:
    site = tmp_path / "root"
    site.mkdir()
    (site / "big.bin").write_bytes(os.urandom(BIG))
    (site / "small.txt").write_bytes(b"small file\n" * 10)
    return site


@pytest.fixture
def sendfile_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The byte counts ``os.sendfile`` was asked for, in this process, while it still works."""
    calls: list[int] = []
    real: Callable[..., int] = os.sendfile

    def counting(out_fd: int, in_fd: int, offset: Any, count: int, *args: Any) -> int:
        calls.append(count)
        return real(out_fd, in_fd, offset, count, *args)

    monkeypatch.setattr(os, "sendfile", counting)
    return calls


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length body from a keep-alive connection."""
    head = parse_response(await reader.readuntil(b"\r\n\r\n"))
    body = await reader.readexactly(int(head.headers["content-length"]))
    return head.status, head.headers, body


async def test_big_files_go_out_with_sendfile_on_keep_alive(
    root: Path, sendfile_calls: list[int]
) -> None:
    """Two big responses and a small one on one connection, every byte exact."""
    expected = (root / "big.bin").read_bytes()
    async with web_server(root, port=0) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        try:
            async with asyncio.timeout(30):
                for _ in range(2):
                    writer.write(b"GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    status, headers, body = await read_response(reader)
                    assert status == 200
                    assert headers.get("connection", "keep-alive").lower() != "close"
                    assert hashlib.sha256(body).digest() == hashlib.sha256(expected).digest()
                writer.write(b"GET /small.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                status, _, body = await read_response(reader)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    assert status == 200
    assert body == b"small file\n" * 10
    assert sendfile_calls, "the big file was copied through Python, not sent by the kernel"
    assert sum(sendfile_calls) >= 2 * BIG  # asked for at least every byte, twice


async def test_small_files_are_answered_from_memory(root: Path, sendfile_calls: list[int]) -> None:
    async with web_server(root, port=0) as server:
        response = await raw_get(server.address[1], "/small.txt")
        ranged = await raw_get(server.address[1], "/small.txt", "Range: bytes=0-4\r\n")
    assert response.status == 200
    assert response.body == b"small file\n" * 10
    assert response.headers["content-length"] == "110"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "etag" in response.headers
    assert ranged.status == 206
    assert ranged.body == b"small"
    assert ranged.headers["content-range"] == "bytes 0-4/110"
    assert sendfile_calls == []


async def test_ranges_of_a_big_file_are_exact(root: Path, sendfile_calls: list[int]) -> None:
    """One range (206) and two (multipart: part heads written between two sendfile calls)."""
    data = (root / "big.bin").read_bytes()
    async with web_server(root, port=0) as server:
        port = server.address[1]
        one = await raw_get(port, "/big.bin", "Range: bytes=1000-3000999\r\n")
        two = await raw_get(port, "/big.bin", "Range: bytes=5-2000004, 4000000-\r\n")
    assert one.status == 206
    assert one.body == data[1000:3001000]
    assert two.status == 206
    boundary = two.headers["content-type"].split("boundary=")[1]
    parts = two.body.split(b"--" + boundary.encode())
    assert parts[0] == b""
    assert parts[-1] == b"--\r\n"
    bodies = [part.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n") for part in parts[1:-1]]
    assert bodies == [data[5:2000005], data[4000000:]]
    assert int(two.headers["content-length"]) == len(two.body)
    assert sum(sendfile_calls) >= len(one.body) + 2000000 + len(data) - 4000000


async def test_a_slow_reader_gets_every_byte_in_order(root: Path) -> None:
    """A client that reads in small steps: the server waits for room, in order, no loss.

    The part heads of a multipart response are written through the transport while
    the socket is full, so they wait in its buffer; the next range must follow them.
    """
    data = (root / "big.bin").read_bytes()
    async with web_server(root, port=0) as server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.address[1]))
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            writer.write(
                b"GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Range: bytes=0-99999, 200000-3199999, 5000000-\r\n\r\n"
            )
            received = bytearray()
            async with asyncio.timeout(45):
                head = parse_response(await reader.readuntil(b"\r\n\r\n"))
                length = int(head.headers["content-length"])
                while len(received) < length:
                    chunk = await reader.read(8192)
                    assert chunk
                    received += chunk
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    boundary = head.headers["content-type"].split("boundary=")[1].encode()
    parts = bytes(received).split(b"--" + boundary)
    bodies = [part.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n") for part in parts[1:-1]]
    assert bodies == [data[:100000], data[200000:3200000], data[5000000:]]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_client_that_resets_mid_sendfile_leaves_nothing_behind(root: Path) -> None:
    """H8 on both loops: the duplicate descriptor and the file are closed, no task is left."""
    big = root / "huge.bin"
    with open(big, "wb") as f:
        f.truncate(100 * 1024 * 1024)  # sparse
    async with web_server(root, port=0) as server:
        before_fds = _open_fds()
        before_tasks = asyncio.all_tasks()
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        received = 0
        async with asyncio.timeout(20):
            while received < 1024 * 1024:
                chunk = await reader.read(65536)
                assert chunk
                received += len(chunk)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()  # an RST, mid-transfer
        await writer.wait_closed()
        serving = asyncio.all_tasks() - before_tasks
        _, pending = await asyncio.wait(serving, timeout=10) if serving else (set(), set())
        assert not pending
        assert _open_fds() <= before_fds
        async with asyncio.timeout(10):
            again = await raw_get(server.address[1], "/small.txt")
    assert again.status == 200


@contextlib.asynccontextmanager
async def tls_site(root: Path, context: ssl.SSLContext) -> AsyncIterator[int]:
    """StaticFiles in a user's own aiohttp app, served over TLS on 127.0.0.1:0."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", StaticFiles(root).handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def test_tls_never_gets_a_raw_sendfile(
    root: Path, tmp_path: Path, sendfile_calls: list[int]
) -> None:
    """Over TLS the file is encrypted like any body: sendfile() on the socket would leak it."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    data = (root / "big.bin").read_bytes()
    async with tls_site(root, server_context) as port:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context, server_hostname="127.0.0.1"
        )
        try:
            async with asyncio.timeout(30):
                for target in (b"/big.bin", b"/small.txt"):
                    writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    status, _, body = await read_response(reader)
                    assert status == 200
                    assert body == (data if target == b"/big.bin" else b"small file\n" * 10)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
    assert sendfile_calls == []


async def test_bytes_already_buffered_leave_before_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """send_file() waits for the transport's own buffer to empty, then sends the file.

    The peer reads nothing until the server holds 16 MiB more than the sockets can
    take, so the prefix is still in the transport's buffer when send_file() starts:
    a sendfile() then could put file bytes on the wire ahead of it.  Which write
    wins that race depends on the order of the loop's events, so the test checks
    the cause: every sendfile() call finds the transport's buffer empty.
    """
    buffered_at_sendfile: list[int] = []
    transports: list[asyncio.WriteTransport] = []
    real: Callable[..., int] = os.sendfile

    def watching(out_fd: int, in_fd: int, offset: Any, count: int, *args: Any) -> int:
        buffered_at_sendfile.append(transports[0].get_write_buffer_size())
        return real(out_fd, in_fd, offset, count, *args)

    monkeypatch.setattr(os, "sendfile", watching)
    prefix = b"p" * (16 * 1024 * 1024)
    payload = os.urandom(3 * 1024 * 1024 + 7)
    path = tmp_path / "payload.bin"
    path.write_bytes(payload)
    started = asyncio.Event()
    outcome: dict[str, int] = {}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            transports.append(writer.transport)
            writer.write(prefix)
            outcome["buffered"] = writer.transport.get_write_buffer_size()
            started.set()
            with open(path, "rb") as file:
                outcome["sent"] = await send_file(
                    writer.transport,
                    file,
                    0,
                    len(payload),
                    drained=lambda: wait_flushed(writer.transport, writer.drain),
                    write=lambda chunk: _write_and_drain(writer, chunk),
                )
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
        try:
            async with asyncio.timeout(30):
                await started.wait()
                received = await reader.read(-1)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    assert outcome["buffered"] > 0, "the prefix was not buffered: the test proves nothing"
    assert outcome["sent"] == len(payload)
    assert buffered_at_sendfile
    assert set(buffered_at_sendfile) == {0}
    assert len(received) == len(prefix) + len(payload)
    assert received[: len(prefix)] == prefix
    assert received[len(prefix) :] == payload


async def _write_and_drain(writer: asyncio.StreamWriter, chunk: bytes) -> None:
    writer.write(chunk)
    await writer.drain()
