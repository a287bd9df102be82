"""CommandHandler: verb dispatch, states, limits, unknown verbs (real sockets on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest
import trustme

from asyncnet import CommandHandler, tcp_server


class Session(CommandHandler):
    """A POP3-shaped toy: USER/PASS before anything else, then ECHO and state-free NOOP."""

    reply_delimiter = b"\r\n"
    allowed_verbs = {
        "AUTHORIZATION": {"USER", "PASS", "NOOP", "QUIT"},
        "TRANSACTION": {"ECHO", "NOOP", "QUIT"},
    }
    state = "AUTHORIZATION"
    max_argument_length = 10
    unknown_verb_reply = "-ERR unknown command {verb}"
    not_allowed_reply = "-ERR {verb} not allowed now"
    argument_too_long_reply = "-ERR argument too long"
    empty_line_reply = "-ERR empty command"

    def greeting(self) -> str:
        return "+OK ready"

    def do_USER(self, args: str) -> str:
        self.user = args
        return "+OK"

    def do_PASS(self, args: str) -> str:
        self.state = "TRANSACTION"
        return f"+OK welcome {self.user}"

    async def do_ECHO(self, args: str) -> str:
        await asyncio.sleep(0)  # an async verb is answered in order like a plain one
        return f"+OK {args}"

    def do_NOOP(self, args: str) -> str:
        return "+OK"

    def do_QUIT(self, args: str) -> str:
        self.close()
        return "+OK bye"

    not_a_command = "attribute, never reachable"


class Chatty(CommandHandler):
    command_prefix = "/"

    def handle_text(self, line: str) -> str:
        return f"said: {line}"

    def do_WHO(self, args: str) -> str:
        return "who: me"


@pytest.fixture
async def session() -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    async with tcp_server(Session) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        assert await reader.readline() == b"+OK ready\r\n"
        yield reader, writer
        writer.close()
        await writer.wait_closed()


async def ask(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], line: bytes) -> bytes:
    reader, writer = conn
    writer.write(line + b"\r\n")
    async with asyncio.timeout(5):
        return (await reader.readline()).rstrip(b"\r\n")


async def test_verbs_states_and_case(session: tuple[asyncio.StreamReader, asyncio.StreamWriter]):
    assert await ask(session, b"ECHO hi") == b"-ERR ECHO not allowed now"
    assert await ask(session, b"user bob") == b"+OK"
    assert await ask(session, b"PASS x") == b"+OK welcome bob"
    assert await ask(session, b"echo hi there") == b"+OK hi there"
    assert await ask(session, b"USER eve") == b"-ERR USER not allowed now"
    assert await ask(session, b"NOOP") == b"+OK"


async def test_unknown_verbs_never_reach_other_attributes(
    session: tuple[asyncio.StreamReader, asyncio.StreamWriter],
):
    assert await ask(session, b"FROB") == b"-ERR unknown command FROB"
    assert await ask(session, b"_COMMAND") == b"-ERR unknown command ?"
    assert await ask(session, b"__class__") == b"-ERR unknown command ?"
    assert await ask(session, b"NOT_A_COMMAND") == b"-ERR unknown command ?"
    assert await ask(session, b"") == b"-ERR empty command"
    assert await ask(session, b"NOOP") == b"+OK"  # still serving


async def test_argument_length_limit(session: tuple[asyncio.StreamReader, asyncio.StreamWriter]):
    assert await ask(session, b"USER " + b"x" * 11) == b"-ERR argument too long"
    assert await ask(session, b"USER " + b"x" * 10) == b"+OK"


async def test_pipelined_commands_are_answered_in_order(
    session: tuple[asyncio.StreamReader, asyncio.StreamWriter],
):
    reader, writer = session
    writer.write(b"USER a\r\nPASS b\r\nECHO 1\r\nECHO 2\r\nQUIT\r\n")
    async with asyncio.timeout(5):
        data = await reader.read()  # QUIT closes: read to EOF
    assert data.split(b"\r\n") == [b"+OK", b"+OK welcome a", b"+OK 1", b"+OK 2", b"+OK bye", b""]


async def test_prefix_separates_commands_from_text():
    async with tcp_server(Chatty) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"hello\n/who\n/nope\n")
        async with asyncio.timeout(5):
            lines = [await reader.readline() for _ in range(3)]
        writer.close()
        await writer.wait_closed()
    assert lines == [b"said: hello\n", b"who: me\n", b"error: unknown command NOPE\n"]


def test_verbs_lists_the_do_methods():
    assert Session.verbs() == ["ECHO", "NOOP", "PASS", "QUIT", "USER"]


class Upgradable(CommandHandler):
    """STARTTLS on a CommandHandler (the shape of SMTP's STARTTLS and POP3's STLS)."""

    context: ssl.SSLContext
    seen: ClassVar[list[str]] = []

    async def do_STARTTLS(self, args: str) -> None:
        self.send_line("ready")
        await self.start_tls(self.context, handshake_timeout=5)

    def do_SAY(self, args: str) -> str:
        self.seen.append(args)
        tls = self.transport.get_extra_info("sslcontext") is not None
        return f"{args} over {'TLS' if tls else 'plaintext'}"


async def test_start_tls_discards_plaintext_pipelined_behind_the_command(tmp_path) -> None:
    """P5 (server side): bytes sent before the handshake are never handled as commands."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    Upgradable.context = server_context
    Upgradable.seen = []
    async with tcp_server(Upgradable) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"SAY before\nSTARTTLS\nSAY injected\n")
        async with asyncio.timeout(5):
            assert await reader.readline() == b"before over plaintext\n"
            assert await reader.readline() == b"ready\n"
            await writer.start_tls(client_context, server_hostname="127.0.0.1")
            writer.write(b"SAY after\n")
            assert await reader.readline() == b"after over TLS\n"
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()
    assert Upgradable.seen == ["before", "after"]
