"""Sending on aiosmtplib: smtplib's refused-recipients contract, TLS policy, M1-M4."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiosmtplib.protocol
import pytest
from aiosmtpd.smtp import SMTP as AioSMTP
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from asyncnet.errors import ConfigurationError, LocalProtocolError, OperationTimeout
from asyncnet.mail import LocalMailServer, SMTPClient, make_message, send_message
from asyncnet.mail._errors import (
    MailProtocolError,
    MessageNotSent,
    RecipientsRefused,
    SMTPReplyError,
    TLSRequired,
    split_refused,
)
from asyncnet.mail._smtpd import BoundedSMTP

from .test_pop3_client import tls_pair


class Recorder:
    """aiosmtpd handler: 450 for busy@, 550 for nobody@, stores everything else."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.startswith("busy@"):
            return "450 4.2.1 mailbox busy, try later"
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.messages.append(
            (envelope.mail_from or "", list(envelope.rcpt_tos), envelope.original_content or b"")
        )
        return "250 OK queued"


@contextlib.asynccontextmanager
async def aiosmtpd_server(
    handler: Any, *, ssl_context: ssl.SSLContext | None = None, **options: Any
) -> AsyncIterator[int]:
    """aiosmtpd's protocol on this loop, 127.0.0.1:0 (``ssl_context``: implicit TLS)."""
    loop = asyncio.get_running_loop()
    connections: set[AioSMTP] = set()
    server = await loop.create_server(
        lambda: BoundedSMTP(handler, connections, hostname="localhost", loop=loop, **options),
        "127.0.0.1",
        0,
        ssl=ssl_context,
    )
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for protocol in list(connections):
            if protocol.transport is not None:
                protocol.transport.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def fake_smtp(script: Any) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A scripted SMTP server; yields (port, received lines)."""
    received: list[bytes] = []
    tasks: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        writers.append(writer)
        try:
            await script(reader, writer, received)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], received
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        await server.wait_closed()


async def replies_ok_until(
    stop: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, got: list[bytes]
) -> None:
    """Greet, answer 250 (354 to DATA) until a line starting with ``stop`` arrives."""
    writer.write(b"220 fake ESMTP\r\n")
    while line := await reader.readline():
        got.append(line)
        if line.upper().startswith(stop):
            return
        if line.upper().startswith(b"EHLO"):
            writer.write(b"250-fake\r\n250 8BITMIME\r\n")
        elif line.upper().startswith(b"DATA"):
            writer.write(b"354 go ahead\r\n")
        else:
            writer.write(b"250 OK\r\n")
        await writer.drain()


def message(**kw: Any) -> Any:
    options = {
        "sender": "me@localhost",
        "recipients": ["a@localhost"],
        "subject": "test",
        "body": "hello\n",
    }
    options.update(kw)
    return make_message(**options)


async def test_partial_refusal_returns_mapping() -> None:
    """Like smtplib.sendmail: {address: (code, message)} for the refused ones, 4xx and 5xx."""
    handler = Recorder()
    async with aiosmtpd_server(handler) as port, asyncio.timeout(10):
        recipients = ["a@localhost", "busy@localhost", "nobody@localhost"]
        refused = await send_message(message(recipients=recipients), port=port)
    assert refused == {
        "busy@localhost": (450, "4.2.1 mailbox busy, try later"),
        "nobody@localhost": (550, "5.1.1 no such user"),
    }
    assert split_refused(refused) == (
        {"busy@localhost": (450, "4.2.1 mailbox busy, try later")},
        {"nobody@localhost": (550, "5.1.1 no such user")},
    )
    assert [rcpts for _, rcpts, _ in handler.messages] == [["a@localhost"]]


async def test_total_refusal_raises_with_every_reply() -> None:
    """Every recipient refused: RecipientsRefused carrying each reply; nothing sent."""
    handler = Recorder()
    async with aiosmtpd_server(handler) as port, asyncio.timeout(10):
        with pytest.raises(RecipientsRefused) as info:
            await send_message(
                message(recipients=["busy@localhost", "nobody@localhost"]), port=port
            )
        assert info.value.refused == {
            "busy@localhost": (450, "4.2.1 mailbox busy, try later"),
            "nobody@localhost": (550, "5.1.1 no such user"),
        }
        assert not info.value.temporary  # one of them is permanent
        with pytest.raises(RecipientsRefused) as info:
            await send_message(message(recipients=["busy@localhost"]), port=port)
        assert info.value.temporary
        assert info.value.code == 450
    assert handler.messages == []


async def test_many_messages_one_connection() -> None:
    """SMTPClient sends several messages over one connection."""
    async with LocalMailServer({"a": "pw"}) as mail, asyncio.timeout(10):
        async with SMTPClient(*mail.smtp_address) as client:
            for n in range(3):
                assert await client.send_message(message(subject=f"n{n}")) == {}
        await mail.wait_for_deliveries(3)
    assert [d.user for d in mail.deliveries] == ["a", "a", "a"]
    (peer,) = {d.peer for d in mail.deliveries}  # one client port: one connection
    assert peer[0] == "127.0.0.1"


@pytest.mark.parametrize(
    "bad",
    [
        {"subject": "hi\r\nBcc: victim@example.org"},
        {"subject": "hi\nX-Evil: 1"},
        {"sender": "me@localhost\r\nRCPT TO:<x@y>"},
    ],
)
def test_header_injection_refused(bad: dict[str, str]) -> None:
    """M1: CR/LF in a header value is refused when the message is built."""
    with pytest.raises(ValueError, match=r"linefeed|carriage") as info:
        message(**bad)
    assert isinstance(info.value, LocalProtocolError)


@pytest.mark.parametrize(
    ("sender", "recipients"),
    [
        ("me@localhost\r\nRCPT TO:<x@y>", ["a@localhost"]),
        ("me@localhost", ["a@localhost\r\nDATA"]),
        ("me@localhost", ["a@local\x00host"]),
        ("me@localhost", ["a@localhost\x1b[2J"]),
    ],
)
async def test_envelope_injection_refused(sender: str, recipients: list[str]) -> None:
    """M1: control characters in MAIL FROM / RCPT TO: ValueError, no MAIL command sent."""
    async with fake_smtp(lambda r, w, got: replies_ok_until(b"QUIT", r, w, got)) as (port, got):
        async with asyncio.timeout(10), SMTPClient("127.0.0.1", port, timeout=5) as client:
            with pytest.raises(ValueError):
                await client.send_message(message(), sender=sender, recipients=recipients)
        assert not any(line.upper().startswith((b"MAIL", b"RCPT", b"DATA")) for line in got)


async def test_drop_during_data_is_not_sent_and_retry_keeps_message_id() -> None:
    """M2: the server closes after 354: MessageNotSent; the retry carries the same Message-ID."""
    msg = message()
    # the fake hangs up when DATA arrives, before answering it
    async with fake_smtp(lambda r, w, got: replies_ok_until(b"DATA", r, w, got)) as (port, _):
        async with asyncio.timeout(10):
            with pytest.raises(MessageNotSent, match="not sent"):
                await send_message(msg, port=port, timeout=5)
    first_id = msg["Message-ID"]
    assert first_id
    async with LocalMailServer({"a": "pw"}) as mail, asyncio.timeout(10):
        assert await send_message(msg, port=mail.smtp_address[1]) == {}
        await mail.wait_for_deliveries(1)
        assert f"Message-ID: {first_id}".encode() in mail.deliveries[0].data


async def test_drop_after_354_reply() -> None:
    """M2: a server that says 354 and then disconnects mid-DATA: MessageNotSent."""

    async def script(reader: Any, writer: Any, got: list[bytes]) -> None:
        await replies_ok_until(b"DATA", reader, writer, got)
        writer.write(b"354 go ahead\r\n")
        await writer.drain()
        await reader.readline()  # the first line of the message, then hang up

    async with fake_smtp(script) as (port, _), asyncio.timeout(10):
        with pytest.raises(MessageNotSent):
            await send_message(message(), port=port, timeout=5)


async def test_response_too_long() -> None:
    """M3: a 100 KB reply line: a protocol error, not a buffer without limit."""

    async def script(reader: Any, writer: Any, got: list[bytes]) -> None:
        writer.write(b"220 " + b"x" * 100_000 + b"\r\n")
        await writer.drain()
        await reader.read()

    async with fake_smtp(script) as (port, _), asyncio.timeout(10):
        with pytest.raises(MailProtocolError, match="Response too long"):
            await send_message(message(), port=port, timeout=5)


async def test_response_without_newline(monkeypatch: pytest.MonkeyPatch) -> None:
    """M3: 500 bytes with no newline, with aiosmtplib's limit lowered: Response too long."""
    monkeypatch.setattr(aiosmtplib.protocol, "MAX_RESPONSE_LENGTH", 128)

    async def script(reader: Any, writer: Any, got: list[bytes]) -> None:
        writer.write(b"220 " + b"y" * 500)
        await writer.drain()
        await reader.read()

    async with fake_smtp(script) as (port, _), asyncio.timeout(10):
        with pytest.raises(MailProtocolError, match="Response too long"):
            await send_message(message(), port=port, timeout=5)


async def test_starttls_required_but_missing() -> None:
    """M4: STARTTLS required, server without it: TLSRequired, nothing sent in plaintext."""
    handler = Recorder()
    async with aiosmtpd_server(handler) as port, asyncio.timeout(10):
        with pytest.raises(TLSRequired):
            await send_message(message(), port=port, tls="starttls", timeout=5)
    assert handler.messages == []


async def test_server_that_never_replies() -> None:
    """M4: a server that accepts and says nothing: OperationTimeout after `timeout`."""

    async def script(reader: Any, writer: Any, got: list[bytes]) -> None:
        await reader.read()

    async with fake_smtp(script) as (port, _), asyncio.timeout(10):
        with pytest.raises(OperationTimeout):
            await send_message(message(), port=port, timeout=0.3)


async def test_server_that_hangs_mid_transaction() -> None:
    """M4: the server stops answering after MAIL FROM: OperationTimeout, per command."""

    async def script(reader: Any, writer: Any, got: list[bytes]) -> None:
        await replies_ok_until(b"MAIL", reader, writer, got)
        await reader.read()

    async with fake_smtp(script) as (port, _), asyncio.timeout(10):
        with pytest.raises(OperationTimeout):
            await send_message(message(), port=port, timeout=0.3)


async def test_starttls_and_auth() -> None:
    """STARTTLS (required) then AUTH: the message arrives; a wrong password is refused."""
    server_ctx, client_ctx = tls_pair()
    handler = Recorder()

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and data.password == b"sesame"
        return AuthResult(success=ok, handled=False)

    async with (
        aiosmtpd_server(
            handler,
            tls_context=server_ctx,
            require_starttls=True,
            auth_required=True,
            authenticator=authenticator,
        ) as port,
        asyncio.timeout(10),
    ):
        options = {"port": port, "tls": "starttls", "ssl_context": client_ctx, "timeout": 5}
        assert await send_message(message(), username="u", password="sesame", **options) == {}
        with pytest.raises(SMTPReplyError, match="login refused"):
            await send_message(message(), username="u", password="wrong", **options)
    assert len(handler.messages) == 1


async def test_implicit_tls() -> None:
    """Implicit TLS (port 465 style)."""
    server_ctx, client_ctx = tls_pair()
    handler = Recorder()
    async with aiosmtpd_server(handler, ssl_context=server_ctx) as port, asyncio.timeout(10):
        async with SMTPClient(
            "127.0.0.1", port, tls="implicit", ssl_context=client_ctx, timeout=5
        ) as client:
            assert client.encrypted
            assert await client.send_message(message()) == {}
    assert len(handler.messages) == 1


def test_bad_options() -> None:
    """Options are checked before any connection."""
    with pytest.raises(ConfigurationError, match="tls"):
        SMTPClient(tls="maybe")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="password"):
        SMTPClient(password="x")
