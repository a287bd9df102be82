"""POP3 RETR and TOP stream a message from the Maildir in bounded chunks: byte-exact
(dot-stuffing and line endings right across chunk boundaries), bounded server memory
whatever the message's size, paused (never buffered) while the client does not read."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import poplib
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncnet.mail import Maildirs, PasswordAuthenticator, POP3Client, POP3Server
from asyncnet.mail._maildir import CHUNK_SIZE, WireForm, wire_chunks
from asyncnet.mail._pop3 import server as pop3_server
from asyncnet.mail._pop3.server import DotStuffer, TopCut
from asyncnet.protocols import dot_stuff, ensure_final_newline
from benchmarks.mail_server import measured

from .test_pop3_client import tls_pair

pytestmark = pytest.mark.timeout(60)

USERS = {"alice": "wonderland"}
MIB = 1024 * 1024


def big_message(size: int = 12 * 1000 * 1000, seed: int = 26) -> bytes:
    """A message of about ``size`` bytes: CRLF lines of base64 (76 characters, under
    poplib's line limit), every 97th starting with a dot, so that chunk boundaries fall
    at every offset of a line, stuffed ones among them."""
    rnd = random.Random(seed)
    lines = base64.encodebytes(rnd.randbytes(size * 3 // 4)).split(b"\n")[:-1]
    for i in range(0, len(lines), 97):
        lines[i] = b"." + lines[i]
    head = b"Subject: big\r\n\r\n"
    return head + b"\r\n".join(lines) + b"\r\n"


def reference_top(message: bytes, lines: int) -> bytes:
    """TOP as the whole-message server computed it (header, empty line, ``lines`` lines)."""
    data = ensure_final_newline(message)
    head, sep, body = data.partition(b"\r\n\r\n")
    kept = body.split(b"\r\n")[:-1][:lines]  # the body ends with CRLF: drop the last ""
    return head + sep + b"".join(line + b"\r\n" for line in kept)


def pad_to(prefix: bytes, offset: int, end: bytes = b"\r\n") -> bytes:
    """``prefix`` and filler lines (short ones: clients limit a line's length) up to
    exactly ``offset`` bytes, so that what comes next starts there."""
    left = offset - len(prefix)
    lines = []
    while left > 0:
        size = min(100, left)
        if 0 < left - size < len(end) + 1:
            size -= len(end) + 1  # leave room for a last line of at least one byte
        lines.append(b"f" * (size - len(end)) + end)
        left -= size
    data = prefix + b"".join(lines)
    assert len(data) == offset
    return data


def chunked(data: bytes, sizes: Iterator[int]) -> Iterator[bytes]:
    pos = 0
    while pos < len(data):
        step = next(sizes)
        yield data[pos : pos + step]
        pos += step


# -- the sans-IO pieces ----------------------------------------------------------------


def test_stuffed_chunks_equal_the_whole_message_stuffed() -> None:
    """Whatever the chunk boundaries (a CR/LF split, a dot after a boundary, no final
    newline, a bare CR at the end), the chunks joined equal ``dot_stuff`` of the whole."""
    rnd = random.Random(7)
    alphabet = [b"a", b".", b"\r", b"\n", b"\r\n", b"\r\n.", b"..", b"\n."]
    for _ in range(5000):
        message = b"".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 40)))
        sizes = iter(lambda: rnd.randrange(1, 6), None)
        form, stuffer = WireForm(), DotStuffer()
        out = [stuffer.feed(form.feed(c)) for c in chunked(message, sizes)]
        out.append(stuffer.feed(form.finish()))
        assert b"".join(out) + b".\r\n" == dot_stuff(message), message


def test_top_cut_in_chunks_equals_the_cut_of_the_whole() -> None:
    """TopCut over chunks keeps the header, the empty line and N body lines, wherever
    the file's reads end (between the blank line's CR and LF, inside a body line)."""
    rnd = random.Random(8)
    for _ in range(3000):
        head = b"".join(rnd.choice([b"H: v\r\n", b"X: .\r\n"]) for _ in range(rnd.randrange(1, 4)))
        body = b"".join(rnd.choice([b"l\r\n", b".\r\n", b"\r\n", b"xy\r\n"]) for _ in range(9))
        message = head + b"\r\n" + body
        lines = rnd.randrange(0, 12)
        cut = TopCut(lines)
        sizes = iter(lambda: rnd.randrange(1, 5), None)
        form = WireForm()  # as the server feeds it: never a CRLF split between chunks
        got = b"".join(cut.feed(form.feed(c)) for c in chunked(message, sizes))
        got += cut.feed(form.finish())
        assert got == reference_top(message, lines), (message, lines)
        assert cut.done or lines >= 9  # stops reading once it has what it needs


def test_a_message_with_no_empty_line_is_all_header() -> None:
    """No empty line: TOP sends the whole message, as before."""
    cut = TopCut(0)
    assert cut.feed(b"Subject: x\r\nmore\r\n") == b"Subject: x\r\nmore\r\n"
    assert not cut.done


def test_wire_chunks_keep_a_split_crlf_and_end_every_line() -> None:
    """A CR ending one read and its LF starting the next make one CRLF; LF-only files and
    a last line without newline come out as wire_form() gives them."""
    for message in [b"a\r\nb", b"a\nb\n", b"a\r", b"\r\r\n", b"", b"x" * 10 + b"\r\n"]:
        for size in (1, 2, 3, 64):
            assert b"".join(wire_chunks(io.BytesIO(message), size)) == ensure_final_newline(message)


# -- real clients ----------------------------------------------------------------------


@pytest.fixture
def maildirs(tmp_path: Path) -> Maildirs:
    return Maildirs(tmp_path, list(USERS))


def server_for(maildirs: Maildirs, **options: object) -> POP3Server:
    return POP3Server(
        maildirs,
        PasswordAuthenticator(USERS),
        host="127.0.0.1",
        port=0,
        **options,  # type: ignore[arg-type]
    )


def poplib_retr(port: int, number: int) -> tuple[bytes, int]:
    """RETR with the stdlib client (in a thread): the message and its LIST size."""
    client = poplib.POP3("127.0.0.1", port, timeout=30)
    try:
        client.user("alice")
        client.pass_("wonderland")
        size = int(client.list(number).split()[2])
        _, lines, _ = client.retr(number)
        client.quit()
    finally:
        client.close()
    return b"".join(line + b"\r\n" for line in lines), size


@pytest.mark.slow
async def test_12mb_retr_is_byte_exact_with_poplib_and_pop3client(maildirs: Maildirs) -> None:
    """A 12 MB message with dot lines on every chunk boundary comes back byte-exact
    (sha256) through poplib and through POP3Client, and LIST's size is its length."""
    message = big_message()
    maildirs.deliver_now("alice", message)
    expected = hashlib.sha256(message).hexdigest()
    async with server_for(maildirs) as server:
        got, size = await asyncio.to_thread(poplib_retr, server.address[1], 1)
        assert size == len(message)
        assert hashlib.sha256(got).hexdigest() == expected
        async with POP3Client("127.0.0.1", server.address[1]) as client:
            await client.login("alice", "wonderland")
            digest = hashlib.sha256()
            assert await client.retr_to(1, digest.update) == len(message)
            assert digest.hexdigest() == expected
            top = await client.top(1, 3)
            assert top == reference_top(message, 3)


@pytest.mark.all_loops
async def test_odd_messages_round_trip(maildirs: Maildirs) -> None:
    """No final newline, LF-only lines, a lone dot line, a dot at a chunk's first byte,
    a CRLF split between two reads, an empty message: RETR gives each in wire form
    (and LIST its size), TOP cuts it right."""
    messages = [
        b"Subject: a\r\n\r\nno final newline",
        b"Subject: b\n\nlf only\n.\n..two\n",
        pad_to(b"Subject: c\r\n\r\n", CHUNK_SIZE) + b".dot at the boundary\r\n",
        pad_to(b"Subject: c\n\n", CHUNK_SIZE, b"\n") + b".dot after LF lines\n",
        pad_to(b"Subject: d\r\n\r\n", CHUNK_SIZE - 2) + b"y\r\n",  # CR | LF
        pad_to(b"Subject: d\r\n\r\n", CHUNK_SIZE - 3) + b"y\r\r\n",  # CR CR | LF
        pad_to(b"Subject: e\r\n\r\n", CHUNK_SIZE - 1) + b".\r\n",  # a lone dot line
        b"",
    ]
    for message in messages:
        maildirs.deliver_now("alice", message)
    async with server_for(maildirs) as server:
        async with POP3Client("127.0.0.1", server.address[1]) as client:
            await client.login("alice", "wonderland")
            sizes = await client.list()
            for number, message in enumerate(messages, 1):
                assert await client.retr(number) == ensure_final_newline(message)
                assert sizes[number] == len(ensure_final_newline(message))
                assert await client.top(number, 1) == reference_top(message, 1)


async def test_pipelined_commands_keep_their_order_around_a_streamed_reply(
    maildirs: Maildirs,
) -> None:
    """STAT, RETR of a large message and LIST sent in one write: the replies come in that
    order, the streamed one whole between the others, and the server counts its bytes."""
    message = b"Subject: p\r\n\r\n" + b".line\r\n" * 100_000
    maildirs.deliver_now("alice", message)
    async with server_for(maildirs) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.address[1])
        try:
            greeting = await reader.readline()
            writer.write(b"USER alice\r\nPASS wonderland\r\nSTAT\r\nRETR 1\r\nLIST 1\r\nQUIT\r\n")
            async with asyncio.timeout(20):
                data = await reader.read()
        finally:
            writer.close()
        assert server.stats.bytes_out == len(greeting + data)  # streamed bytes counted too
    replies = data.split(b"\r\n", 3)
    assert replies[2] == f"+OK 1 {len(message)}".encode()
    body = dot_stuff(message)
    assert replies[3] == f"+OK {len(message)} octets\r\n".encode() + body + (
        f"+OK 1 {len(message)}\r\n+OK bye (0 message(s) deleted)\r\n".encode()
    )


@pytest.mark.all_loops
@pytest.mark.parametrize("tls", ["stls", "implicit"])
async def test_retr_streams_over_tls(maildirs: Maildirs, tls: str) -> None:
    """Over STLS and implicit TLS (the TLS transport, on both loops) a 3 MB RETR is
    streamed byte-exact too, and the session goes on afterwards."""
    server_ctx, client_ctx = tls_pair()
    message = big_message(3 * 1000 * 1000)
    maildirs.deliver_now("alice", message)
    maildirs.deliver_now("alice", b"Subject: after\r\n\r\n.\r\n")
    options = {"ssl_context": server_ctx, "implicit_tls": tls == "implicit"}
    async with server_for(maildirs, **options) as server:
        address = server.address[:2]
        async with POP3Client(*address, tls=tls, ssl_context=client_ctx, timeout=10) as pop:
            assert pop.encrypted
            await pop.login("alice", "wonderland")
            digest = hashlib.sha256()
            await pop.retr_to(1, digest.update)
            assert digest.digest() == hashlib.sha256(message).digest()
            assert await pop.retr(2) == b"Subject: after\r\n\r\n.\r\n"


async def test_100_sessions_at_once(tmp_path: Path) -> None:
    """100 users RETR a 256 KiB message each, all at once: every copy byte-exact."""
    users = {f"u{i}": f"p{i}" for i in range(100)}
    maildirs = Maildirs(tmp_path, list(users))
    message = big_message(256 * 1024)
    for user in users:
        maildirs.deliver_now(user, message)
    expected = hashlib.sha256(message).hexdigest()

    async def fetch(port: int, user: str) -> str:
        async with POP3Client("127.0.0.1", port) as client:
            await client.login(user, users[user])
            digest = hashlib.sha256()
            await client.retr_to(1, digest.update)
            await client.quit()
            return digest.hexdigest()

    auth = PasswordAuthenticator(users)
    async with POP3Server(maildirs, auth, host="127.0.0.1", port=0) as server:
        async with asyncio.timeout(30):
            digests = await asyncio.gather(*(fetch(server.address[1], u) for u in users))
    assert digests == [expected] * 100


# -- flow control and failures ---------------------------------------------------------


@pytest.mark.all_loops
async def test_a_client_that_does_not_read_pauses_the_reply(
    maildirs: Maildirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S2: a client that stops reading holds the RETR at the drain: the write buffer
    stays within the high-water mark plus one stuffed chunk, another client is served
    meanwhile, and once the client reads, the rest comes, byte-exact."""
    message = big_message(8 * 1000 * 1000)
    maildirs.deliver_now("alice", message)
    waiting = asyncio.Event()
    buffered: list[int] = []
    drain = pop3_server._DrainWatch.drain

    async def watched(self: pop3_server._DrainWatch) -> None:
        if self.transport.get_write_buffer_size() > self.transport.get_write_buffer_limits()[1]:
            buffered.append(self.transport.get_write_buffer_size())
            waiting.set()
        await drain(self)

    monkeypatch.setattr(pop3_server._DrainWatch, "drain", watched)
    loop = asyncio.get_running_loop()
    async with server_for(maildirs) as server:
        # A bare socket that nothing reads from (a StreamReader would keep reading into
        # its own buffer, and the server might never have to wait): once its small
        # receive buffer and the server's send buffer are full, the server must wait.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", server.address[1]))
            received = bytearray()
            async with asyncio.timeout(10):
                while not received.endswith(b"\r\n"):  # the greeting
                    received += await loop.sock_recv(sock, 4096)
            await loop.sock_sendall(sock, b"USER alice\r\nPASS wonderland\r\nRETR 1\r\n")
            async with asyncio.timeout(20):
                await waiting.wait()
            high = server.write_buffer_high
            assert max(buffered) <= high + 2 * CHUNK_SIZE
            # A second client is served meanwhile.
            async with POP3Client("127.0.0.1", server.address[1]) as other:
                assert (await other.capa())["TOP"] == []
            received.clear()
            async with asyncio.timeout(30):
                while not received.endswith(b"\r\n.\r\n"):
                    chunk = await loop.sock_recv(sock, 256 * 1024)
                    assert chunk, "the server closed the connection mid-RETR"
                    received += chunk
            user, password, retr, body = bytes(received).split(b"\r\n", 3)
            assert user.startswith(b"+OK")
            assert password.startswith(b"+OK")
            assert retr.startswith(b"+OK")
            assert body == dot_stuff(message)
            assert max(buffered) <= high + 2 * CHUNK_SIZE
        finally:
            sock.close()


async def test_a_client_that_drops_mid_retr_frees_the_maildrop(
    maildirs: Maildirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3: a client that resets the connection mid-RETR ends the session (the maildrop
    lock is released: the next login works) and nothing reaches the loop's handler."""
    message = big_message(4 * 1000 * 1000)
    maildirs.deliver_now("alice", message)
    ended = asyncio.Event()
    finish = pop3_server.POP3Session.finish

    def finished(self: pop3_server.POP3Session) -> None:
        finish(self)
        ended.set()

    monkeypatch.setattr(pop3_server.POP3Session, "finish", finished)
    async with server_for(maildirs) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.address[1])
        await reader.readline()
        writer.write(b"USER alice\r\nPASS wonderland\r\nRETR 1\r\n")
        async with asyncio.timeout(10):
            await reader.readline()
            await reader.readline()
            await reader.readexactly(CHUNK_SIZE)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()
        async with asyncio.timeout(10):
            await ended.wait()
        assert "alice" not in server.locked
        async with POP3Client("127.0.0.1", server.address[1]) as client:
            await client.login("alice", "wonderland")
            assert await client.stat() == (1, len(message))


# -- memory, in a process of its own ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_retr_of_12mb_grows_the_server_by_under_4_mib(maildirs: Maildirs) -> None:
    """The server process's peak resident size while it serves a 12 MB RETR (poplib)
    and a TOP of it grows by under 4 MiB (it held the whole message, +58 MiB, before)."""
    message = big_message()
    maildirs.deliver_now("alice", message)
    small = b"Subject: warm\r\n\r\n" + b".x\r\n" * 1000
    maildirs.deliver_now("alice", small)
    with measured("pop3", maildirs.root, "alice", "wonderland") as (port, ask):
        # Warm up: the first session imports and allocates what every session needs.
        # Messages are numbered oldest first: the big one is 1, the small one 2.
        assert poplib_retr(port, 2)[0] == small
        before = ask("mark")
        got, _ = poplib_retr(port, 1)
        growth = ask("peak") - before
        print(f"server peak RSS growth during a 12 MB RETR: {growth / MIB:.2f} MiB")
        assert hashlib.sha256(got).digest() == hashlib.sha256(message).digest()
        assert growth < 4 * MIB, f"server grew by {growth / MIB:.1f} MiB"
