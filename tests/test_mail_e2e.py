"""End to end in one loop: SMTP (aiosmtplib, aiosmtpd) -> Maildir -> POP3 (ours), byte-exact."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
from email.message import EmailMessage

import pytest
from aiosmtplib.email import flatten_message

from asyncnet.mail import POP3Client, RecipientsRefused, SMTPClient, local_mail_server, make_message
from asyncnet.protocols import ensure_final_newline

USERS = {"alice": "wonderland", "bob": "builder"}


def dotted() -> EmailMessage:
    body = ".\n..\n...\n.leading dot\nend\n"
    return make_message(
        sender="me@localhost", recipients=["alice@localhost"], subject="dots", body=body
    )


def no_final_newline() -> EmailMessage:
    raw = b"From: me@localhost\r\nTo: alice@localhost\r\nSubject: no newline\r\n\r\nno newline"
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def rfc2047() -> EmailMessage:
    return make_message(
        sender="Jürgen Müller <me@localhost>",
        recipients=["alice@localhost"],
        subject="Grüße aus Köln ☕ — naïve café",
        body="Unicode body: ☕ Grüße\n",
    )


def attachment() -> EmailMessage:
    message = make_message(
        sender="me@localhost", recipients=["alice@localhost"], subject="file", body="see file\n"
    )
    message.add_attachment(
        bytes(range(256)) * 64, maintype="application", subtype="octet-stream", filename="b.bin"
    )
    message.set_boundary("==asyncnet-test-boundary==")  # so flattening twice gives the same
    return message


def five_megabytes() -> EmailMessage:
    message = make_message(
        sender="me@localhost", recipients=["alice@localhost"], subject="big", body="big one\n"
    )
    message.add_attachment(
        os.urandom(5 * 1024 * 1024), maintype="application", subtype="octet-stream", filename="x"
    )
    message.set_boundary("==asyncnet-test-boundary==")
    return message


CASES = [dotted, no_final_newline, rfc2047, attachment, five_megabytes]


@pytest.mark.parametrize("build", CASES, ids=[c.__name__ for c in CASES])
@pytest.mark.slow
async def test_roundtrip_byte_identical(build) -> None:  # type: ignore[no-untyped-def]
    """What POP3 returns is byte for byte what SMTP carried (CRLF, final CRLF added by
    SMTP itself), and parses back to the same headers and parts."""
    original = build()
    async with local_mail_server(USERS) as mail, asyncio.timeout(30):
        async with SMTPClient(*mail.smtp_address, timeout=20) as smtp:
            assert await smtp.send_message(original) == {}
        await mail.wait_for_deliveries(1)
        async with POP3Client(*mail.pop3_address, timeout=20) as pop:
            await pop.login("alice", "wonderland")
            (number, size), *_ = (await pop.list()).items()
            received = await pop.retr(number)
        stored = mail.deliveries[0].data  # read from the Maildir, which close() removes
    sent = flatten_message(original, cte_type="8bit")  # what aiosmtplib put after DATA
    assert received == ensure_final_newline(sent)
    assert stored == ensure_final_newline(sent)
    assert size == len(received)
    parsed = email.message_from_bytes(received, policy=email.policy.default)
    assert str(parsed["Subject"]) == str(original["Subject"])
    assert str(parsed["From"]) == str(original["From"])
    assert parts(parsed) == parts(original)


def parts(message: EmailMessage) -> list[object]:
    """Each leaf part's content; text with its line endings normalised (the wire adds CRLF)."""
    out: list[object] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        content = part.get_content()  # type: ignore[attr-defined]
        out.append(
            content.replace("\r\n", "\n").rstrip("\n") if isinstance(content, str) else content
        )
    return out


@pytest.mark.all_loops
async def test_partial_and_total_refusal_end_to_end() -> None:
    """Partial refusal: the others get it, the mapping names the refused; total: nobody does."""
    async with local_mail_server(USERS) as mail, asyncio.timeout(20):
        message = make_message(
            sender="me@localhost",
            recipients=["alice@localhost", "bob@localhost", "nobody@localhost"],
            subject="three",
            body="to three\n",
        )
        async with SMTPClient(*mail.smtp_address) as smtp:
            refused = await smtp.send_message(message)
            assert list(refused) == ["nobody@localhost"]
            assert refused["nobody@localhost"][0] == 550
            with pytest.raises(RecipientsRefused) as info:
                await smtp.send_message(message, recipients=["nobody@localhost", "ghost@localhost"])
            assert sorted(info.value.refused) == ["ghost@localhost", "nobody@localhost"]
        await mail.wait_for_deliveries(2)
        assert sorted(d.user for d in mail.deliveries) == ["alice", "bob"]
        for user, password in USERS.items():
            async with POP3Client(*mail.pop3_address) as pop:
                await pop.login(user, password)
                assert (await pop.stat())[0] == 1
                body = await pop.retr(1)
                assert b"Subject: three" in body
