"""The asyncio POP3 client against scripted fake servers: P1-P6 of RELIABILITY.md."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncnet.errors import NetworkError, OperationTimeout
from asyncnet.mail import (
    FetchStore,
    POP3Client,
    POP3ConnectionError,
    POP3ProtocolError,
    POP3ReplyError,
    TLSRequired,
    fetch_all,
)
from asyncnet.protocols import dot_stuff, ensure_final_newline

from .pop3_fakes import FakePOP3, scripted

MESSAGES = {
    "uid-1": b"Subject: one\r\n\r\nfirst\r\n",
    "uid-2": b"Subject: two\r\n\r\n.\r\n..\r\n...\r\n",
    "uid-3": b"Subject: three\r\n\r\nthird\r\n",
}


def tls_pair() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) from a throwaway trustme CA."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def stored(directory: Path) -> list[bytes]:
    return sorted(p.read_bytes() for p in (directory / "new").iterdir())


async def test_session_basics() -> None:
    """STAT, LIST, UIDL, RETR, TOP-free session; leaving the block sends QUIT."""
    async with FakePOP3(MESSAGES) as fake:
        async with asyncio.timeout(10):
            async with POP3Client("127.0.0.1", fake.port, timeout=5) as pop:
                await pop.login("alice", "pw")
                assert await pop.stat() == (3, sum(map(len, MESSAGES.values())))
                assert await pop.uidl() == {1: "uid-1", 2: "uid-2", 3: "uid-3"}
                assert await pop.list() == {i: len(m) for i, m in enumerate(MESSAGES.values(), 1)}
                assert await pop.retr(2) == MESSAGES["uid-2"]
                with pytest.raises(POP3ReplyError) as info:
                    await pop.apop("alice", "pw")  # the fake has no APOP: -ERR, session goes on
                assert not info.value.temporary
                assert await pop.noop() == ""
        assert fake.commands[-1] == "QUIT"
        assert pop.quit_confirmed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from([b".", b"..", b"...", b".x", b"x.", b"", b"plain", b"\xc3\xa9"]),
        min_size=1,
        max_size=10,
    ),
    st.booleans(),
)
def test_dot_stuffing_roundtrip(lines: list[bytes], final_newline: bool) -> None:
    """P1: '.', '..', '...' lines and no final CRLF round-trip byte-exact over a socket."""
    body = b"Subject: dots\r\n\r\n" + b"\r\n".join(lines) + (b"\r\n" if final_newline else b"")

    async def main() -> bytes:
        async with FakePOP3({"u": body}) as fake, asyncio.timeout(10):
            async with POP3Client("127.0.0.1", fake.port, timeout=5) as pop:
                await pop.login("a", "b")
                return await pop.retr(1)

    assert asyncio.run(main()) == ensure_final_newline(body)


async def test_drop_mid_retr(tmp_path: Path) -> None:
    """P2: the server closes before '.CRLF': POP3ConnectionError, nothing stored, no DELE."""
    async with FakePOP3(MESSAGES, faults=["drop_mid_retr"]) as fake, asyncio.timeout(10):
        store = FetchStore(tmp_path, "alice@fake")
        pop = await POP3Client("127.0.0.1", fake.port, timeout=5).start()
        await pop.login("alice", "pw")
        report = await fetch_all(pop, store, delete=True)
        assert isinstance(report.error, POP3ConnectionError)
        assert isinstance(report.error, NetworkError)
        assert stored(tmp_path) == []
        assert list((tmp_path / "tmp").iterdir()) == []
        assert not any(c.startswith("DELE") for c in fake.commands)
        assert len(fake.messages) == 3


@pytest.mark.all_loops
@pytest.mark.parametrize("fault", ["drop_after_dele", "lose_quit_reply", "drop_before_quit"])
async def test_drop_and_rerun_stores_each_once(tmp_path: Path, fault: str) -> None:
    """P3: a drop after DELE, or a lost QUIT +OK: the rerun stores each UIDL exactly once."""
    async with FakePOP3(MESSAGES, faults=[fault]) as fake, asyncio.timeout(20):
        store = FetchStore(tmp_path, "alice@fake")
        pop = await POP3Client("127.0.0.1", fake.port, timeout=5).start()
        await pop.login("alice", "pw")
        first = await fetch_all(pop, store, delete=True)
        assert isinstance(first.error, POP3ConnectionError)
        assert first.unconfirmed  # "deletion state unknown"
        if fault == "lose_quit_reply":
            assert fake.messages == {}  # the server did apply them: only the +OK was lost
        else:
            assert len(fake.messages) == 3  # RFC semantics: no QUIT, no deletion

        store = FetchStore(tmp_path, "alice@fake")  # a new process: state from disk only
        pop = await POP3Client("127.0.0.1", fake.port, timeout=5).start()
        await pop.login("alice", "pw")
        second = await fetch_all(pop, store, delete=True)
        assert second.error is None
        assert second.ok
        assert stored(tmp_path) == sorted(MESSAGES.values())  # exactly once each
        assert fake.messages == {}
        assert sorted(first.stored + second.stored) == sorted(MESSAGES)
        assert set(second.deleted) | set(first.deleted) >= set(first.unconfirmed)


async def test_crash_between_rename_and_record(tmp_path: Path) -> None:
    """P3: a message file without its seen-set record is recognised, not stored twice."""
    async with FakePOP3(MESSAGES) as fake, asyncio.timeout(10):
        store = FetchStore(tmp_path, "alice@fake")
        (tmp_path / "new" / store.name_for("uid-2")).write_bytes(MESSAGES["uid-2"])
        async with POP3Client("127.0.0.1", fake.port, timeout=5) as pop:
            await pop.login("alice", "pw")
            report = await fetch_all(pop, store)
        assert report.already == ["uid-2"]
        assert stored(tmp_path) == sorted(MESSAGES.values())
        assert not any(c == "RETR 2" for c in fake.commands)


async def test_hostile_long_line() -> None:
    """P4: a 100 KB status line: protocol error, connection closed, memory bounded."""

    client_closed = asyncio.Event()

    async def script(fake: FakePOP3, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        writer.write(b"+OK " + b"x" * 100_000 + b"\r\n")
        await writer.drain()
        with contextlib.suppress(ConnectionResetError):  # RST: it left data unread
            await reader.read()
        client_closed.set()

    async with scripted(script) as fake, asyncio.timeout(10):
        pop = POP3Client("127.0.0.1", fake.port, timeout=5, max_line_length=1024)
        with pytest.raises(POP3ProtocolError):
            await pop.start()
        async with asyncio.timeout(2):  # the client closed the connection itself
            await client_closed.wait()


async def test_hostile_endless_message() -> None:
    """P4: '+OK 10 octets' then up to 50 MB: a typed error long before; peak memory bounded."""

    async def script(fake: FakePOP3, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        writer.write(fake.greeting)
        await fake.readline(reader)  # RETR
        writer.write(b"+OK 10 octets\r\n")
        chunk = (b"y" * 998 + b"\r\n") * 64
        for _ in range(50 * 1024 * 1024 // len(chunk)):
            writer.write(chunk)
            await writer.drain()

    async with scripted(script) as fake, asyncio.timeout(20):
        pop = await POP3Client("127.0.0.1", fake.port, timeout=5).start()
        tracemalloc.start()
        try:
            with pytest.raises(POP3ProtocolError, match="larger than allowed"):
                await pop.retr(1)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 * 1024 * 1024
        with pytest.raises(POP3ConnectionError, match="unusable"):
            await pop.noop()


async def test_no_terminator_times_out() -> None:
    """P4: a reply that never ends hits the per-command timeout; the connection is closed."""

    client_closed = asyncio.Event()

    async def script(fake: FakePOP3, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        writer.write(fake.greeting)
        await fake.readline(reader)
        writer.write(b"+OK\r\nline one\r\n")  # and then nothing, not even the "."
        with contextlib.suppress(ConnectionResetError):
            await reader.read()
        client_closed.set()

    async with scripted(script) as fake, asyncio.timeout(10):
        pop = await POP3Client("127.0.0.1", fake.port, timeout=0.3).start()
        with pytest.raises(OperationTimeout):
            await pop.retr(1)
        async with asyncio.timeout(2):  # the client closed the connection itself
            await client_closed.wait()


@pytest.mark.parametrize(
    ("user", "password"), [("a\r\nDELE 1", "pw"), ("alice", "pw\nDELE 1"), ("al\x00ice", "pw")]
)
async def test_injection_refused_before_sending(user: str, password: str) -> None:
    """P5: CR/LF/NUL in USER/PASS: ValueError before any byte of the command is written."""
    async with FakePOP3(MESSAGES) as fake, asyncio.timeout(10):
        async with POP3Client("127.0.0.1", fake.port, timeout=5) as pop:
            with pytest.raises(ValueError):
                await pop.login(user, password)
            await pop.noop()  # the session is still usable
        assert b"DELE" not in fake.received
        assert b"\x00" not in fake.received


async def test_stls_refused_with_require_tls() -> None:
    """P5: STLS -> -ERR with TLS required: TLSRequired, and no USER/PASS ever sent."""
    async with FakePOP3(MESSAGES) as fake, asyncio.timeout(10):
        with pytest.raises(TLSRequired):
            await POP3Client("127.0.0.1", fake.port, tls="stls", timeout=5).start()
        assert b"USER" not in fake.received
        assert b"PASS" not in fake.received


async def test_require_tls_refuses_plaintext_login() -> None:
    """P5: require_tls on a plaintext connection: the password is never sent."""
    async with FakePOP3(MESSAGES) as fake, asyncio.timeout(10):
        pop = await POP3Client("127.0.0.1", fake.port, require_tls=True, timeout=5).start()
        with pytest.raises(TLSRequired):
            await pop.login("alice", "secret")
        assert b"secret" not in fake.received
        assert b"USER" not in fake.received


@pytest.mark.all_loops
async def test_plaintext_after_stls_ok_is_discarded() -> None:
    """P5: a server (or a man in the middle) appending plaintext after STLS's +OK:
    those bytes are never read as replies."""
    server_ctx, client_ctx = tls_pair()

    async def script(fake: FakePOP3, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        writer.write(fake.greeting)
        while (line := await fake.readline(reader)) is not None:
            if line == "CAPA":
                writer.write(b"+OK\r\nSTLS\r\n.\r\n")
            elif line == "STLS":
                writer.write(b"+OK go ahead\r\n+OK injected\r\n+OK injected again\r\n")
                await writer.drain()
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


@pytest.mark.parametrize(
    ("greeting", "error"),
    [
        (b"* OK IMAP4 ready\r\n", POP3ProtocolError),
        (b"HELLO\r\n", POP3ProtocolError),
        (b"-ERR go away\r\n", POP3ReplyError),
        (b"", POP3ConnectionError),
    ],
)
async def test_bad_greeting(greeting: bytes, error: type[Exception]) -> None:
    """P6: a greeting without +OK/-ERR is a protocol error; -ERR is a reply error."""
    async with FakePOP3(MESSAGES, greeting=greeting) as fake, asyncio.timeout(10):
        pop = POP3Client("127.0.0.1", fake.port, timeout=2)
        with pytest.raises(error):
            await pop.start()


@pytest.mark.parametrize(
    "listing",
    [b"1 a\r\n2 a\r\n", b"1 has space\r\n", b"1 " + b"u" * 71 + b"\r\n", b"1 a\r\n1 b\r\n"],
)
async def test_malformed_uidl_from_server(listing: bytes) -> None:
    """P6: duplicate UIDs, spaces, over-long UIDs from a real connection: typed errors."""

    async def script(fake: FakePOP3, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        writer.write(fake.greeting)
        await fake.readline(reader)
        writer.write(b"+OK\r\n" + listing + b".\r\n")
        await writer.drain()
        await reader.read()

    async with scripted(script) as fake, asyncio.timeout(10):
        with pytest.raises(POP3ProtocolError):
            async with POP3Client("127.0.0.1", fake.port, timeout=5) as pop:
                await pop.uidl()
        assert "QUIT" not in fake.commands  # an error leaves the maildrop as it was


async def test_apop_with_hostile_banner() -> None:
    """P6: an APOP banner of a million '<' is scanned in linear time; no timestamp, -ERR."""
    greeting = b"+OK " + b"<" * 1_000_000 + b"\r\n"
    async with FakePOP3(MESSAGES, greeting=greeting) as fake, asyncio.timeout(10):
        pop = POP3Client("127.0.0.1", fake.port, timeout=5, max_line_length=2_000_000)
        async with pop:
            with pytest.raises(POP3ReplyError, match="no APOP timestamp"):
                await pop.apop("alice", "secret")


async def test_retr_to_streams_a_big_message(tmp_path: Path) -> None:
    """RETR streamed to a file: a 5 MB message arrives whole; the client holds only pieces."""
    lines = [b"%07d " % i + b"x" * 70 + b"\r\n" for i in range(65_000)]
    lines[10] = b".a line that gets stuffed\r\n"
    big = b"Subject: big\r\n\r\n" + b"".join(lines)
    wire = memoryview(dot_stuff(big))  # made before memory is traced

    async def script(fake: FakePOP3, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        writer.write(fake.greeting)
        await fake.readline(reader)  # RETR 1
        writer.write(b"+OK %d octets\r\n" % len(big))
        for start in range(0, len(wire), 64 * 1024):  # sent as it would be from a file
            writer.write(wire[start : start + 64 * 1024])
            await writer.drain()
        await reader.read()

    async with scripted(script) as fake, asyncio.timeout(30):
        pop = await POP3Client("127.0.0.1", fake.port, timeout=20).start()
        out = tmp_path / "big.eml"
        with open(out, "wb") as file:
            tracemalloc.start()
            try:
                size = await pop.retr_to(1, file.write)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        pop.close()
        await pop.wait_closed()
    assert out.read_bytes() == big
    assert size == len(big)
    assert peak < 2 * 1024 * 1024
