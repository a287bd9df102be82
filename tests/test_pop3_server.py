"""Our POP3 server (on CommandHandler, serving Maildirs): states, UIDL, TOP, locks, STLS."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from asyncnet.mail import Maildirs, PasswordAuthenticator, POP3Client, POP3ReplyError, POP3Server

from .test_pop3_client import tls_pair

USERS = {"alice": "wonderland", "bob": "builder"}
MESSAGES = [
    b"Subject: first\r\n\r\nhello\r\n",
    b"Subject: dots\r\n\r\n.\r\n..leading\r\nline 3\r\nline 4\r\n",
    b"Subject: third\r\n\r\nbye",
]


def make_server(tmp_path: Path, **options: object) -> POP3Server:
    maildirs = Maildirs(tmp_path, list(USERS))
    for message in MESSAGES:
        maildirs.deliver_now("alice", message)
    options.setdefault("failed_login_delay", 0.01)
    return POP3Server(maildirs, PasswordAuthenticator(USERS), port=0, **options)  # type: ignore[arg-type]


class Raw:
    """A raw POP3 connection: send lines, read lines."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, server: POP3Server) -> Raw:
        reader, writer = await asyncio.open_connection(*server.address[:2])
        raw = cls(reader, writer)
        assert (await raw.line()).startswith("+OK")
        return raw

    async def line(self) -> str:
        async with asyncio.timeout(5):
            return (await self.reader.readline()).decode().rstrip("\r\n")

    async def send(self, text: str) -> str:
        self.writer.write(text.encode() + b"\r\n")
        return await self.line()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def test_states_and_errors(tmp_path: Path) -> None:
    """RFC 1939 states: TRANSACTION verbs need a login; bad verbs and arguments get -ERR."""
    async with make_server(tmp_path) as server:
        raw = await Raw.connect(server)
        assert await raw.send("STAT") == "-ERR STAT not allowed now"
        assert await raw.send("FROB") == "-ERR unknown command FROB"
        assert await raw.send("PASS x") == "-ERR send USER first"
        assert await raw.send("USER alice") == "+OK send PASS"
        assert (await raw.send("PASS wonderland")).startswith("+OK alice has 3 message(s)")
        assert await raw.send("USER bob") == "-ERR USER not allowed now"
        assert await raw.send("RETR abc") == "-ERR invalid message number"
        assert await raw.send("RETR 99") == "-ERR no such message 99"
        assert await raw.send("DELE " + "9" * 300) == "-ERR argument too long"
        assert await raw.send("QUIT") == "+OK bye (0 message(s) deleted)"
        await raw.close()


@pytest.mark.all_loops
async def test_session_uidl_top_retr(tmp_path: Path) -> None:
    """STAT/LIST sizes match what RETR sends; UIDL is stable across sessions; TOP."""
    async with make_server(tmp_path) as server, asyncio.timeout(10):
        async with POP3Client(*server.address[:2], timeout=5) as pop:
            await pop.login("alice", "wonderland")
            listing = await pop.list()
            uids = await pop.uidl()
            bodies = [await pop.retr(n) for n in sorted(listing)]
            assert bodies == [MESSAGES[0], MESSAGES[1], MESSAGES[2] + b"\r\n"]
            assert [len(b) for b in bodies] == [listing[n] for n in sorted(listing)]
            assert await pop.stat() == (3, sum(listing.values()))
            assert await pop.top(2, 1) == b"Subject: dots\r\n\r\n.\r\n"
            assert await pop.top(2, 0) == b"Subject: dots\r\n\r\n"
            assert (await pop.uidl(2)) == {2: uids[2]}
            assert len(set(uids.values())) == 3
        async with POP3Client(*server.address[:2], timeout=5) as pop:
            await pop.login("alice", "wonderland")
            assert await pop.uidl() == uids


async def test_deletion_only_on_quit(tmp_path: Path) -> None:
    """DELE then a dropped connection deletes nothing; DELE then QUIT deletes; RSET undoes."""
    async with make_server(tmp_path) as server, asyncio.timeout(10):
        pop = await POP3Client(*server.address[:2], timeout=5).start()
        await pop.login("alice", "wonderland")
        await pop.dele(1)
        assert await pop.stat() == (2, len(MESSAGES[1]) + len(MESSAGES[2]) + 2)
        with pytest.raises(POP3ReplyError):
            await pop.retr(1)
        pop.close()  # no QUIT
        await pop.wait_closed()
        async with POP3Client(*server.address[:2], timeout=5) as pop:
            await pop.login("alice", "wonderland")
            assert (await pop.stat())[0] == 3
            await pop.dele(1)
            await pop.rset()
            assert (await pop.stat())[0] == 3
            await pop.dele(1)
            await pop.dele(3)
        assert pop.quit_confirmed
        async with POP3Client(*server.address[:2], timeout=5) as pop:
            await pop.login("alice", "wonderland")
            assert await pop.retr(1) == MESSAGES[1]
            assert (await pop.stat())[0] == 1


async def test_one_session_per_maildrop(tmp_path: Path) -> None:
    """A second login to a locked maildrop gets -ERR [IN-USE]; the lock ends with the session."""
    async with make_server(tmp_path) as server, asyncio.timeout(10):
        first = await POP3Client(*server.address[:2], timeout=5).start()
        await first.login("alice", "wonderland")
        async with POP3Client(*server.address[:2], timeout=5) as second:
            with pytest.raises(POP3ReplyError) as info:
                await second.login("alice", "wonderland")
            assert info.value.temporary
            await second.login("bob", "builder")  # other maildrops are free
        await first.stop()  # QUIT: the lock is released before the +OK is sent
        async with POP3Client(*server.address[:2], timeout=5) as again:
            await again.login("alice", "wonderland")
            again.close()  # a dropped session releases the lock too (in finish())
        await server.events.wait_for(lambda: "alice" not in server.locked, timeout=5)


async def test_failed_login_is_delayed(tmp_path: Path) -> None:
    """A wrong password is answered only after failed_login_delay."""
    async with make_server(tmp_path, failed_login_delay=0.3) as server, asyncio.timeout(10):
        async with POP3Client(*server.address[:2], timeout=5) as pop:
            start = time.monotonic()
            with pytest.raises(POP3ReplyError, match=r"\[AUTH\]"):
                await pop.login("alice", "wrong")
            assert time.monotonic() - start >= 0.3
            await pop.login("alice", "wonderland")


async def test_apop(tmp_path: Path) -> None:
    """APOP with the greeting's timestamp logs in; a wrong secret does not."""
    async with make_server(tmp_path) as server, asyncio.timeout(10):
        async with POP3Client(*server.address[:2], timeout=5) as pop:
            with pytest.raises(POP3ReplyError):
                await pop.apop("alice", "nope")
            await pop.apop("alice", "wonderland")
            assert (await pop.stat())[0] == 3


@pytest.mark.all_loops
async def test_stls(tmp_path: Path) -> None:
    """STLS with a trustme certificate: CAPA offers it before TLS and not after."""
    server_ctx, client_ctx = tls_pair()
    async with make_server(tmp_path, ssl_context=server_ctx) as server, asyncio.timeout(10):
        async with POP3Client(
            *server.address[:2], tls="stls", ssl_context=client_ctx, timeout=5
        ) as pop:
            assert pop.encrypted
            assert "STLS" not in await pop.capa()
            await pop.login("alice", "wonderland")
            assert await pop.retr(2) == MESSAGES[1]
        async with POP3Client(*server.address[:2], timeout=5) as plain:
            assert "STLS" in await plain.capa()


@pytest.mark.all_loops
async def test_stls_discards_pipelined_plaintext(tmp_path: Path) -> None:
    """P5 (server side): commands sent after STLS but before the handshake are dropped."""
    server_ctx, client_ctx = tls_pair()
    async with make_server(tmp_path, ssl_context=server_ctx) as server, asyncio.timeout(10):
        raw = await Raw.connect(server)
        raw.writer.write(b"STLS\r\nUSER alice\r\n")  # the USER must never count
        assert (await raw.line()).startswith("+OK")
        await raw.writer.start_tls(client_ctx, server_hostname="127.0.0.1")
        assert await raw.send("PASS wonderland") == "-ERR send USER first"
        assert await raw.send("STLS") == "-ERR STLS not available"
        await raw.close()


async def test_autologout_deletes_nothing(tmp_path: Path) -> None:
    """An idle session is closed after autologout, without entering UPDATE."""
    async with make_server(tmp_path, autologout=0.3) as server, asyncio.timeout(10):
        raw = await Raw.connect(server)
        await raw.send("USER alice")
        await raw.send("PASS wonderland")
        assert (await raw.send("DELE 1")).startswith("+OK")
        assert await raw.reader.read() == b""  # closed by the server
        await raw.close()
        assert len(server.maildirs.scan("alice")) == 3


async def test_authenticator_crash_keeps_server(tmp_path: Path) -> None:
    """A handler error closes that connection only; the next client is served."""

    class Broken(PasswordAuthenticator):
        def check(self, user: str, password: str) -> bool:
            if user == "boom":
                raise RuntimeError("database down")
            return super().check(user, password)

    maildirs = Maildirs(tmp_path, list(USERS))
    server = POP3Server(maildirs, Broken(USERS), port=0, failed_login_delay=0.01)
    async with server, asyncio.timeout(10):
        raw = await Raw.connect(server)
        await raw.send("USER boom")
        raw.writer.write(b"PASS x\r\n")
        assert await raw.reader.read() == b""
        await raw.close()
        async with POP3Client(*server.address[:2], timeout=5) as pop:
            await pop.login("bob", "builder")
        assert server.stats.handler_errors == 1


async def test_undecodable_credentials(tmp_path: Path) -> None:
    """USER/PASS/APOP with bytes that are not UTF-8 (or not ASCII): -ERR, the session goes on."""
    async with make_server(tmp_path) as server:
        raw = await Raw.connect(server)
        raw.writer.write(b"USER \xff\xfe\r\n")
        assert await raw.line() == "+OK send PASS"
        raw.writer.write(b"PASS caf\xc3\xa9\xff\r\n")
        assert await raw.line() == "-ERR [AUTH] invalid user name or password"
        raw.writer.write(b"APOP alice \xe2\x98\x95\r\n")
        assert await raw.line() == "-ERR [AUTH] invalid user name or password"
        assert await raw.send("USER alice") == "+OK send PASS"
        assert (await raw.send("PASS wonderland")).startswith("+OK")
        await raw.close()
        assert server.stats.handler_errors == 0
