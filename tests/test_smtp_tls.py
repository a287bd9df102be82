"""SMTP client TLS: STARTTLS whenever offered (loopback included), AUTH never in
cleartext, ``ssl: SSLContext | bool | None``, certificate failures in words, and the
envelope taken from a prepared message (Bcc never transmitted).  Servers: aiosmtpd on
127.0.0.1:0 with trustme certificates, and scripted fakes for what aiosmtpd won't do."""

from __future__ import annotations

import asyncio
import email.policy
import re
import ssl
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from asyncnet._tls import client_context
from asyncnet.errors import ConfigurationError, LocalProtocolError
from asyncnet.mail import (
    MailConnectionError,
    SMTPClient,
    SMTPReplyError,
    TLSRequired,
    make_message,
    message_envelope,
    send_message,
)

from .test_mail_smtp import aiosmtpd_server, fake_smtp

pytestmark = pytest.mark.timeout(30)


class Handler:
    """aiosmtpd handler keeping each message with the TLS state of its session."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes, bool]] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        rcpts = list(envelope.rcpt_tos)
        self.messages.append((envelope.mail_from or "", rcpts, content, session.ssl is not None))
        return "250 OK"


class Authenticator:
    """aiosmtpd authenticator: user ``u``, password ``sesame``; counts every attempt."""

    def __init__(self) -> None:
        self.attempts = 0

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        self.attempts += 1
        ok = isinstance(data, LoginPassword) and data.password == b"sesame"
        return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("127.0.0.1", "localhost"))).configure_cert(context)
    return context


def client_trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def a_message(**headers: str) -> Any:
    message = make_message(
        sender="me@localhost", recipients=["a@localhost"], subject="tls", body="hello\n"
    )
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    return message


async def test_starttls_on_loopback_by_default(ca: trustme.CA) -> None:
    """No ``tls`` given, a loopback server offering STARTTLS: the message goes encrypted."""
    handler = Handler()
    async with (
        aiosmtpd_server(handler, tls_context=server_context(ca)) as port,
        asyncio.timeout(10),
    ):
        async with SMTPClient("127.0.0.1", port, ssl=client_trusting(ca), timeout=5) as smtp:
            assert smtp.tls == "opportunistic"
            assert smtp.encrypted
            assert await smtp.send_message(a_message()) == {}
    assert [encrypted for *_, encrypted in handler.messages] == [True]


async def test_no_starttls_offered_sends_in_cleartext_without_login() -> None:
    """The local pair's case: no certificate, no STARTTLS, no AUTH: sent in cleartext."""
    handler = Handler()
    async with aiosmtpd_server(handler) as port, asyncio.timeout(10):
        async with SMTPClient("127.0.0.1", port, timeout=5) as smtp:
            assert not smtp.encrypted
            assert await smtp.send_message(a_message()) == {}
    assert [encrypted for *_, encrypted in handler.messages] == [False]


async def test_auth_is_never_sent_in_cleartext_by_default() -> None:
    """M4: a server offering AUTH but no STARTTLS: TLSRequired before any AUTH byte;
    only an explicit ``tls="none"`` logs in over cleartext."""
    handler, auth = Handler(), Authenticator()
    async with (
        aiosmtpd_server(handler, authenticator=auth, auth_require_tls=False) as port,
        asyncio.timeout(10),
    ):
        for tls in (None, "opportunistic"):
            with pytest.raises(TLSRequired, match="password in cleartext"):
                await send_message(
                    a_message(), port=port, tls=tls, username="u", password="sesame", timeout=5
                )
        assert auth.attempts == 0
        assert handler.messages == []
        refused = await send_message(
            a_message(), port=port, tls="none", username="u", password="sesame", timeout=5
        )
    assert refused == {}
    assert auth.attempts == 1
    assert [encrypted for *_, encrypted in handler.messages] == [False]


async def test_login_after_starttls(ca: trustme.CA) -> None:
    """STARTTLS then AUTH, opportunistic (no ``tls``): logged in over TLS, message sent."""
    handler, auth = Handler(), Authenticator()
    async with (
        aiosmtpd_server(
            handler, tls_context=server_context(ca), authenticator=auth, auth_required=True
        ) as port,
        asyncio.timeout(10),
    ):
        options: dict[str, Any] = {"port": port, "ssl": client_trusting(ca), "timeout": 5}
        assert await send_message(a_message(), username="u", password="sesame", **options) == {}
        with pytest.raises(SMTPReplyError, match="login refused: 535"):
            await send_message(a_message(), username="u", password="wrong", **options)
    assert [encrypted for *_, encrypted in handler.messages] == [True]


async def test_untrusted_certificate_is_an_error_never_a_fallback(ca: trustme.CA) -> None:
    """STARTTLS offered with a certificate from a CA we do not trust: an error naming
    the certificate check; nothing is sent in plaintext."""
    handler = Handler()
    async with (
        aiosmtpd_server(handler, tls_context=server_context(ca)) as port,
        asyncio.timeout(10),
    ):
        with pytest.raises(MailConnectionError, match="certificate was not accepted") as info:
            await send_message(a_message(), port=port, timeout=5)  # the system store only
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
    assert info.value.phase == "tls"
    assert handler.messages == []


async def test_certificate_for_another_name(ca: trustme.CA) -> None:
    """A trusted certificate that is not for the host connected to: the mismatch, named."""
    handler = Handler()
    context = server_context(ca, "mail.example.org")
    async with aiosmtpd_server(handler, tls_context=context) as port, asyncio.timeout(10):
        with pytest.raises(MailConnectionError, match=re.escape("not valid for '127.0.0.1'")):
            await send_message(a_message(), port=port, ssl=client_trusting(ca), timeout=5)
    assert handler.messages == []


async def test_client_certificate_from_cafile_and_cert(ca: trustme.CA, tmp_path: Path) -> None:
    """``ssl=client_context(cafile=, certfile=)``: a server requiring a client certificate
    gets one over STARTTLS."""
    cafile, certfile = tmp_path / "ca.pem", tmp_path / "client.pem"
    ca.cert_pem.write_to_path(str(cafile))
    ca.issue_cert("client@localhost").private_key_and_cert_chain_pem.write_to_path(str(certfile))
    server = server_context(ca)
    ca.configure_trust(server)
    server.verify_mode = ssl.CERT_REQUIRED
    handler = Handler()
    async with aiosmtpd_server(handler, tls_context=server) as port, asyncio.timeout(10):
        context = client_context(cafile=cafile, certfile=certfile)
        assert await send_message(a_message(), port=port, ssl=context, timeout=5) == {}
    assert [encrypted for *_, encrypted in handler.messages] == [True]


async def test_ssl_false_is_no_tls_even_when_offered(ca: trustme.CA) -> None:
    """``ssl=False``: no TLS (``tls`` becomes ``"none"``), STARTTLS offered or not."""
    handler = Handler()
    async with (
        aiosmtpd_server(handler, tls_context=server_context(ca)) as port,
        asyncio.timeout(10),
    ):
        async with SMTPClient("127.0.0.1", port, ssl=False, timeout=5) as smtp:
            assert smtp.tls == "none"
            assert not smtp.encrypted
            await smtp.send_message(a_message())
    assert [encrypted for *_, encrypted in handler.messages] == [False]


async def test_implicit_tls_with_ssl_context(ca: trustme.CA) -> None:
    """``tls="implicit"`` with ``ssl=`` a context: TLS from the first byte."""
    handler = Handler()
    async with (
        aiosmtpd_server(handler, ssl_context=server_context(ca)) as port,
        asyncio.timeout(10),
    ):
        options: dict[str, Any] = {"tls": "implicit", "ssl": client_trusting(ca), "timeout": 5}
        async with SMTPClient("127.0.0.1", port, **options) as smtp:
            assert smtp.encrypted
            await smtp.send_message(a_message())
    assert len(handler.messages) == 1


async def test_implicit_tls_against_a_cleartext_port() -> None:
    """``tls="implicit"`` against a server that greets in cleartext: a handshake error."""
    async with aiosmtpd_server(Handler()) as port, asyncio.timeout(10):
        with pytest.raises(MailConnectionError, match="handshake failed") as info:
            await send_message(a_message(), port=port, tls="implicit", timeout=5)
    assert info.value.phase == "tls"


async def test_starttls_offered_then_refused_is_an_error() -> None:
    """M4: STARTTLS offered, then ``454``: an error, not a quiet plaintext send."""

    async def script(reader: Any, writer: Any, received: list[bytes]) -> None:
        writer.write(b"220 fake ESMTP\r\n")
        while line := await reader.readline():
            received.append(line)
            if line.upper().startswith(b"EHLO"):
                writer.write(b"250-fake\r\n250 STARTTLS\r\n")
            elif line.upper().startswith(b"STARTTLS"):
                writer.write(b"454 4.7.0 TLS not available\r\n")
            else:
                writer.write(b"250 OK\r\n")
            await writer.drain()

    async with fake_smtp(script) as (port, got), asyncio.timeout(10):
        with pytest.raises(SMTPReplyError, match="starttls refused: 454"):
            await send_message(a_message(), port=port, timeout=5)
    assert not any(line.upper().startswith((b"MAIL", b"DATA")) for line in got)


def test_ssl_options_are_checked_before_connecting() -> None:
    with pytest.raises(ConfigurationError, match="ssl=False"):
        SMTPClient(tls="starttls", ssl=False)
    with pytest.raises(ConfigurationError, match="ssl must be"):
        SMTPClient(ssl="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not both"):
        SMTPClient(ssl=True, ssl_context=ssl.create_default_context())
    assert SMTPClient().tls == "opportunistic"
    assert SMTPClient(ssl=False).tls == "none"
    assert SMTPClient(tls="implicit").port == 465


# -- the envelope of a prepared message -------------------------------------------

PREPARED = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.org>, carol@example.org\r\n"
    b"Cc: bob@example.org, Undisclosed recipients:;\r\n"
    b"Bcc: secret@example.org\r\n"
    b"Subject: prepared\r\n"
    b"\r\n"
    b"Hello.\r\n"
)


def parse(data: bytes) -> Any:
    return BytesParser(policy=email.policy.default).parsebytes(data)


def test_envelope_from_headers() -> None:
    """From; To, Cc and Bcc, each once, in order; an empty group adds nobody."""
    assert message_envelope(parse(PREPARED)) == (
        "alice@example.org",
        ["bob@example.org", "carol@example.org", "secret@example.org"],
    )


def test_envelope_prefers_sender_and_a_resent_block() -> None:
    """Sender over From (RFC 5322 3.6.2); a forwarded message's Resent- block wins."""
    with_sender = b"Sender: list@example.org\r\n" + PREPARED
    assert message_envelope(parse(with_sender))[0] == "list@example.org"
    resent = (
        b"Resent-Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n"
        b"Resent-From: fwd@example.org\r\n"
        b"Resent-To: dave@example.org\r\n" + PREPARED
    )
    assert message_envelope(parse(resent)) == ("fwd@example.org", ["dave@example.org"])
    twice = b"Resent-Date: Tue, 8 Dec 2026 10:00:00 +0000\r\n" + resent
    with pytest.raises(LocalProtocolError, match="more than one Resent- block"):
        message_envelope(parse(twice))


async def test_prepared_message_bcc_is_never_transmitted() -> None:
    """The envelope reaches every To/Cc/Bcc address; the Bcc header is not in the data."""
    handler = Handler()
    async with aiosmtpd_server(handler) as port, asyncio.timeout(10):
        assert await send_message(parse(PREPARED), port=port, timeout=5) == {}
    [(sender, rcpts, data, _)] = handler.messages
    assert sender == "alice@example.org"
    assert rcpts == ["bob@example.org", "carol@example.org", "secret@example.org"]
    assert b"secret@example.org" not in data
    assert b"\r\nSubject: prepared\r\n" in data
    assert b"\r\nMessage-ID: <" in data  # stamped once, kept across retries


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"To: bob@example.org\r\n\r\nhi\r\n", "no sender"),
        (b"From: a@example.org\r\nSubject: x\r\n\r\nhi\r\n", "no recipients in the message"),
        (b"From: a@example.org\r\nTo: Undisclosed:;\r\n\r\nhi\r\n", "no recipients"),
    ],
)
async def test_a_message_without_an_envelope_fails_before_connecting(
    data: bytes, error: str
) -> None:
    """Checked before any connection: the port is closed, yet the error is the envelope's."""
    with pytest.raises(LocalProtocolError, match=error):
        await send_message(parse(data), port=1, timeout=5)


@pytest.mark.parametrize("name", ["X-A\r\nBcc", "Bad Name", "X:Y", "", "Ünï"])
def test_header_names_are_checked(name: str) -> None:
    """M1: a header name cannot smuggle a line (EmailMessage checks values, not names)."""
    with pytest.raises(LocalProtocolError, match="not a header name"):
        make_message(
            sender="a@localhost",
            recipients=["b@localhost"],
            subject="s",
            body="b",
            headers={name: "v"},
        )


async def test_a_server_without_ehlo_gets_helo_and_no_starttls() -> None:
    """An RFC 821 server (EHLO refused with 502): HELO, no extensions, so no STARTTLS;
    the message goes in cleartext, and a login is refused before AUTH is sent."""

    async def script(reader: Any, writer: Any, received: list[bytes]) -> None:
        writer.write(b"220 old SMTP\r\n")
        while line := await reader.readline():
            received.append(line)
            verb = line.upper()
            if verb.startswith(b"EHLO"):
                writer.write(b"502 command not implemented\r\n")
            elif verb.startswith(b"DATA"):
                writer.write(b"354 go ahead\r\n")
                while (await reader.readline()) != b".\r\n":
                    pass
                writer.write(b"250 queued\r\n")
            elif verb.startswith(b"QUIT"):
                writer.write(b"221 bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"250 OK\r\n")
            await writer.drain()

    async with fake_smtp(script) as (port, got), asyncio.timeout(10):
        assert await send_message(a_message(), port=port, timeout=5) == {}
        commands = [line.split()[0].upper() for line in got]
        assert commands == [b"EHLO", b"HELO", b"MAIL", b"RCPT", b"DATA", b"QUIT"]
        got.clear()
        with pytest.raises(TLSRequired, match="cleartext"):
            await send_message(a_message(), port=port, username="u", password="p", timeout=5)
        assert not any(line.upper().startswith(b"AUTH") for line in got)
