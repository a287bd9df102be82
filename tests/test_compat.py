"""asyncnet._compat: each private internal of asyncio, aioftp and aiosmtpd it relies on.

One test per internal checks, on this Python and these library versions, that the
internal is still there with the shape the helper expects, and fails naming the helper
to update.  Where the helper exists to stop something going wrong, a real exchange
shows what it is for.
"""

from __future__ import annotations

import asyncio
import fcntl
import inspect
import os
import socket
import ssl
import sys
import termios
import time
from asyncio import base_events, selector_events
from pathlib import Path
from typing import Any

import aioftp
import pytest
from aiosmtpd.smtp import SMTP

from asyncnet._compat import (
    discard_stream_buffer,
    is_accept_retry,
    read_datagrams_in_bursts,
    replay_late_detach,
    set_ini_default,
    smtp_streams,
    tolerate_late_accepts,
)
from asyncnet.ftp import FTPClient, FTPServer
from asyncnet.mail import POP3Client

from .pop3_fakes import FakePOP3, scripted

_MISSING = object()

pytestmark = pytest.mark.timeout(30)


def update(helper: str, what: str) -> str:
    """The failure message: which helper of asyncnet/_compat.py to revisit, and why."""
    return f"asyncnet._compat.{helper} needs updating: {what}"


def parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


# -- asyncio: read_datagrams_in_bursts ------------------------------------------------


def test_the_selector_loop_still_has_the_readers_read_datagrams_in_bursts_swaps() -> None:
    loop_class = selector_events.BaseSelectorEventLoop
    add = getattr(loop_class, "_add_reader", None)
    remove = getattr(loop_class, "_remove_reader", None)
    helper = "read_datagrams_in_bursts"
    assert add is not None, update(helper, "BaseSelectorEventLoop._add_reader is gone")
    assert remove is not None, update(helper, "BaseSelectorEventLoop._remove_reader is gone")
    assert parameters(add)[:3] == ["self", "fd", "callback"], update(helper, "_add_reader changed")
    assert parameters(remove) == ["self", "fd"], update(helper, "_remove_reader changed")


async def test_read_datagrams_in_bursts_reads_until_the_transport_closes() -> None:
    """Our reader replaces the transport's and reads every datagram; close() removes it."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, selector_events.BaseSelectorEventLoop):
        pytest.skip("asyncio's selector loop only")
    got: list[bytes] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=sock)
    with pytest.raises(RuntimeError, match="is used by transport"):
        # If this ever works, the public add_reader() can replace the helper.
        loop.add_reader(sock.fileno(), print)
    arrived = asyncio.Event()

    def reader() -> None:
        while True:
            try:
                data, _ = sock.recvfrom(2048)
            except BlockingIOError:
                break
            got.append(data)
        if len(got) >= 3:
            arrived.set()

    assert read_datagrams_in_bursts(loop, transport, sock, reader)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for n in range(3):
            sender.sendto(b"d%d" % n, sock.getsockname())
        async with asyncio.timeout(5):
            await arrived.wait()
    assert got == [b"d0", b"d1", b"d2"]
    transport.close()
    assert not read_datagrams_in_bursts(loop, transport, sock, reader)  # closing: left alone


# -- asyncio: discard_stream_buffer ---------------------------------------------------


async def test_stream_reader_still_buffers_in_a_bytearray_for_discard_stream_buffer() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"pre-handshake plaintext")
    buffer = getattr(reader, "_buffer", None)
    helper = "discard_stream_buffer"
    assert isinstance(buffer, bytearray), update(helper, "StreamReader._buffer is not a bytearray")
    discard_stream_buffer(reader)
    reader.feed_data(b"after")
    reader.feed_eof()
    assert await reader.read() == b"after", update(helper, "clearing _buffer no longer drops data")


@pytest.mark.all_loops
async def test_plaintext_left_in_the_stream_after_stls_is_not_read() -> None:
    """P5: a man in the middle appends a forged reply after STLS's +OK, past what the
    client's last read takes (64 KiB): the bytes stay in the stream reader, not in the
    POP3 parser.  Without :func:`discard_stream_buffer` the forged line is read, after
    the handshake, as the reply to USER."""
    if sys.platform != "linux":
        pytest.skip("needs Linux's count of unacknowledged bytes (SIOCOUTQ)")
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    go_ahead = b"+OK go ahead\r\n"
    room = 64 * 1024 - len(go_ahead)  # the client's read size: what its parser sees
    filler = [b"+OK filler\r\n"] * (room // 12)
    filler[0] = b"+OK filler" + b"x" * (room % 12) + b"\r\n"
    injected = go_ahead + b"".join(filler) + b"+OK forged\r\n"
    assert len(injected) == 64 * 1024 + len(b"+OK forged\r\n")

    def delivered(sock: Any) -> None:
        # Block the loop (the client shares it) until the client's kernel has taken
        # every byte: its next recv() then gets them all, 64 KiB for its parser and
        # the forged line left in its stream reader.  Bounded: 5 s.
        outq = bytearray(4)  # Linux: bytes sent but not yet acknowledged
        deadline = time.monotonic() + 5
        while fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, outq) == 0:
            if not int.from_bytes(outq, sys.byteorder):
                return
            if time.monotonic() > deadline:
                pytest.fail("the client's kernel did not take 64 KiB in 5 s")
            os.sched_yield()

    async def script(fake: FakePOP3, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        writer.write(fake.greeting)
        while (line := await fake.readline(reader)) is not None:
            if line == "CAPA":
                writer.write(b"+OK\r\nSTLS\r\n.\r\n")
            elif line == "STLS":
                writer.write(injected)
                await writer.drain()
                delivered(writer.get_extra_info("socket"))
                await writer.start_tls(server_ctx)
            elif line.startswith("USER"):
                writer.write(b"+OK real user reply\r\n")
            elif line.startswith("PASS"):
                writer.write(b"+OK real pass reply\r\n")
            else:
                writer.write(b"+OK\r\n")
            await writer.drain()

    async with scripted(script) as fake, asyncio.timeout(10):
        async with POP3Client(
            "127.0.0.1", fake.port, tls="stls", ssl_context=client_ctx, timeout=5
        ) as pop:
            assert pop.encrypted
            assert await pop.login("alice", "pw") == "real pass reply"


# -- asyncio: tolerate_late_accepts and replay_late_detach ----------------------------


def test_asyncio_server_still_has_what_tolerate_late_accepts_wraps() -> None:
    server_class = base_events.Server
    helper = "tolerate_late_accepts"
    assert parameters(server_class._wakeup) == ["self"], update(helper, "Server._wakeup changed")
    assert "self._waiters = None" in inspect.getsource(server_class._wakeup), update(
        helper, "Server._wakeup no longer marks itself done by setting _waiters to None"
    )
    assert parameters(server_class._detach)[:1] == ["self"], update(
        "replay_late_detach", "Server._detach changed"
    )


async def test_a_closed_server_woken_twice_stays_quiet() -> None:
    """python/cpython#109564: the second wake-up of a closed asyncio.Server does nothing."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    if not hasattr(server, "_wakeup"):
        pytest.skip("not asyncio's own Server (uvloop)")
    tolerate_late_accepts(server)
    server.close()
    await server.wait_closed()

    class HalfMadeTransport:  # weak-referenceable, like a transport
        pass

    # Raises "TypeError: 'NoneType' object is not iterable" without the wrapper, where
    # a late transport can detach (3.13); elsewhere there is nothing to replay.
    replayed = replay_late_detach(server, HalfMadeTransport())
    if not replayed:
        assert parameters(base_events.Server._detach) == ["self"]  # 3.11, 3.12.1


# -- asyncio: is_accept_retry -----------------------------------------------------------


def test_the_accept_retry_is_still_start_serving_for_is_accept_retry() -> None:
    helper = "is_accept_retry"
    accept = getattr(selector_events.BaseSelectorEventLoop, "_accept_connection", None)
    assert accept is not None, update(helper, "BaseSelectorEventLoop._accept_connection is gone")
    source = inspect.getsource(accept)
    message = update(helper, "the accept retry after EMFILE no longer calls _start_serving")
    assert "ACCEPT_RETRY_DELAY" in source, message
    assert "self._start_serving" in source, message


async def test_is_accept_retry_tells_the_retry_from_other_callbacks() -> None:
    loop = asyncio.get_running_loop()
    if not isinstance(loop, selector_events.BaseSelectorEventLoop):
        pytest.skip("asyncio's selector loop only")
    retry = loop.call_later(3600, getattr(loop, "_start_serving"), None, None)  # noqa: B009
    other = loop.call_later(3600, print)
    try:
        assert is_accept_retry(retry), update("is_accept_retry", "Handle._callback changed")
        assert not is_accept_retry(other)
        assert not is_accept_retry(None)
    finally:
        retry.cancel()
        other.cancel()


# -- aioftp: AioftpControlConnection --------------------------------------------------


def test_aioftp_still_opens_the_control_connection_through_open_connection() -> None:
    helper = "AioftpControlConnection"
    hook = getattr(aioftp.BaseClient, "_open_connection", None)
    assert hook is not None, update(helper, "aioftp.BaseClient._open_connection is gone")
    assert inspect.iscoroutinefunction(hook), update(helper, "_open_connection is not async")
    assert parameters(hook) == ["self", "host", "port"], update(helper, "its signature changed")
    assert "self._open_connection(host, port)" in inspect.getsource(aioftp.BaseClient.connect), (
        update(helper, "aioftp's connect() no longer opens the connection through it")
    )


async def test_the_control_connection_is_opened_by_asyncnet(tmp_path: Path) -> None:
    """Through the hook, the client records the address it really reached ("localhost"
    is 127.0.0.1 here); without it, ``peer`` would be the name as given."""
    async with FTPServer(tmp_path, users={"user": "secret"}) as server:
        _, port = server.address
        async with FTPClient("localhost", port, user="user", password="secret") as client:
            assert client.peer[:2] == ("127.0.0.1", port)


# -- aiosmtpd: smtp_streams -----------------------------------------------------------


async def test_aiosmtpd_sessions_still_keep_their_streams_for_smtp_streams() -> None:
    """A real aiosmtpd session: the streams are the connection to this client."""
    seen: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    class Handler:
        async def handle_NOOP(self, server: SMTP, session: Any, envelope: Any, arg: str) -> str:
            seen.append(smtp_streams(server))
            return "250 seen"

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Handler(), hostname="localhost", loop=loop), "127.0.0.1", 0
    )
    try:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
            await reader.readline()  # the greeting
            writer.write(b"NOOP\r\n")
            assert await reader.readline() == b"250 seen\r\n"
            writer.close()
            await writer.wait_closed()
            local = writer.get_extra_info("sockname")
    finally:
        server.close()
        await server.wait_closed()
    helper = "smtp_streams"
    assert len(seen) == 1
    session_reader, session_writer = seen[0]
    assert isinstance(session_reader, asyncio.StreamReader), update(helper, "SMTP._reader changed")
    assert isinstance(session_writer, asyncio.StreamWriter), update(helper, "SMTP._writer changed")
    assert session_writer.get_extra_info("peername") == local, update(helper, "not this session's")


async def test_aiohttp_runners_still_read_the_shutdown_timeout_set_shutdown_timeout_sets() -> None:
    """``set_shutdown_timeout`` writes ``AppRunner._shutdown_timeout``: the runner must
    still have it (a float, as the constructor's ``shutdown_timeout`` stores it)."""
    from aiohttp import web

    from asyncnet._compat import set_shutdown_timeout

    runner = web.AppRunner(web.Application(), shutdown_timeout=7.0)
    assert getattr(runner, "_shutdown_timeout", None) == 7.0, (
        "aiohttp.web.AppRunner no longer keeps _shutdown_timeout: update "
        "asyncnet._compat.set_shutdown_timeout"
    )
    set_shutdown_timeout(runner, 0.5)
    assert runner._shutdown_timeout == 0.5


def test_pytest_getini_still_answers_from_inicache_set_ini_default_writes(
    pytestconfig: pytest.Config,
) -> None:
    """``set_ini_default`` writes ``Config._inicache``: ``getini()`` must still answer a
    name from it, or the plugin's default loop scope is lost (and pytest-asyncio warns
    in every project that left it unset)."""
    cache = getattr(pytestconfig, "_inicache", None)
    assert isinstance(cache, dict), (
        "pytest.Config no longer keeps _inicache: update asyncnet._compat.set_ini_default"
    )
    name = "asyncio_default_fixture_loop_scope"
    before = cache.get(name, _MISSING)
    try:
        set_ini_default(pytestconfig, name, "module")
        assert pytestconfig.getini(name) == "module", (
            "pytest.Config.getini() no longer answers from _inicache: update "
            "asyncnet._compat.set_ini_default"
        )
    finally:
        if before is _MISSING:
            cache.pop(name, None)
        else:
            cache[name] = before
