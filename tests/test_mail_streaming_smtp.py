"""The local mail server's SMTP side writes DATA to the Maildir's tmp/ in chunks as it
arrives and links it into new/ on the final dot: byte-exact (sha256) with smtplib and
aiosmtplib, never a partial file in new/, nothing left in tmp/, 552 kept, bounded memory."""

from __future__ import annotations

import asyncio
import hashlib
import os
import smtplib
import socket
from pathlib import Path

import aiosmtplib
import pytest

from asyncnet.mail import LocalMailServer, POP3Client
from asyncnet.mail import _local as local_module
from benchmarks.mail_server import measured

from .test_mail_streaming import MIB, big_message

pytestmark = pytest.mark.timeout(60)

USERS = {"alice": "wonderland", "bob": "builder"}


def files(root: Path, user: str, sub: str) -> list[Path]:
    return sorted((root / user / sub).iterdir())


def smtplib_send(port: int, recipients: list[str], message: bytes) -> dict[str, object]:
    """Send with the stdlib client (in a thread); returns what sendmail refused."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost", timeout=30) as client:
        refused: dict[str, object] = dict(client.sendmail("x@localhost", recipients, message))
        return refused


@pytest.mark.slow
async def test_12mb_through_smtplib_and_aiosmtplib_then_pop3(tmp_path: Path) -> None:
    """A 12 MB message with dot lines, sent by smtplib and by aiosmtplib, is stored
    byte-exact (sha256 of the file in new/), nothing stays in tmp/, and POP3 RETR gives
    the same bytes back."""
    message = big_message()
    expected = hashlib.sha256(message).hexdigest()
    async with LocalMailServer(USERS, root=tmp_path) as mail:
        port = mail.smtp_address[1]
        assert await asyncio.to_thread(smtplib_send, port, ["alice@localhost"], message) == {}
        async with aiosmtplib.SMTP(
            hostname="127.0.0.1", port=port, local_hostname="localhost"
        ) as client:
            await client.sendmail("y@localhost", ["alice@localhost"], message)
        stored = files(tmp_path, "alice", "new")
        assert len(stored) == 2
        for path in stored:
            assert hashlib.sha256(path.read_bytes()).hexdigest() == expected
        assert files(tmp_path, "alice", "tmp") == []
        assert [d.size for d in mail.deliveries] == [len(message)] * 2
        async with POP3Client(*mail.pop3_address) as pop:
            await pop.login("alice", "wonderland")
            for number in (1, 2):
                digest = hashlib.sha256()
                await pop.retr_to(number, digest.update)
                assert digest.hexdigest() == expected


async def test_one_copy_on_disk_for_every_recipient(tmp_path: Path) -> None:
    """Two recipients: one file linked into both Maildirs; one user's DELE leaves the
    other's copy, and the POP3 listings keep the order of delivery."""
    first = b"Subject: 1\r\n\r\n.one\r\n"
    second = b"Subject: 2\r\n\r\ntwo\r\n"
    async with LocalMailServer(USERS, root=tmp_path) as mail:
        port = mail.smtp_address[1]
        rcpts = ["alice@localhost", "bob@localhost"]
        assert await asyncio.to_thread(smtplib_send, port, rcpts, first) == {}
        assert await asyncio.to_thread(smtplib_send, port, ["alice@localhost"], second) == {}
        (alice_first, _), [bob_copy] = (
            sorted(files(tmp_path, "alice", "new"), key=lambda p: p.read_bytes() != first),
            files(tmp_path, "bob", "new"),
        )
        assert os.path.samefile(alice_first, bob_copy)
        async with POP3Client(*mail.pop3_address) as pop:
            await pop.login("alice", "wonderland")
            assert [await pop.retr(1), await pop.retr(2)] == [first, second]
            await pop.dele(1)
            await pop.quit()
        assert bob_copy.read_bytes() == first
        assert [d.user for d in mail.deliveries] == ["alice", "bob", "alice"]


async def test_552_over_the_limit_leaves_nothing_behind(tmp_path: Path) -> None:
    """DATA past data_size_limit gets 552 (after the final dot), the partial file in
    tmp/ is removed, new/ stays empty, and the session goes on to deliver the next.
    (HELO, not EHLO: a client that saw SIZE would be refused at MAIL, before any DATA.)"""

    def send_two(port: int) -> tuple[int, dict[str, object]]:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost", timeout=30) as client:
            client.helo("localhost")
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.sendmail("x@localhost", ["alice@localhost"], big_message(2 * MIB))
            leftovers = files(tmp_path, "alice", "tmp") + files(tmp_path, "alice", "new")
            assert leftovers == []
            ok = b"Subject: ok\r\n\r\nok\r\n"
            return refused.value.smtp_code, dict(
                client.sendmail("x@localhost", ["alice@localhost"], ok)
            )

    async with LocalMailServer(USERS, root=tmp_path, data_size_limit=MIB) as mail:
        code, refused = await asyncio.to_thread(send_two, mail.smtp_address[1])
    assert (code, refused) == (552, {})
    assert [p.read_bytes() for p in files(tmp_path, "alice", "new")] == [
        b"Subject: ok\r\n\r\nok\r\n"
    ]


async def test_a_client_gone_mid_data_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3: a client that resets the connection in the middle of DATA: the partial file
    is removed from tmp/, nothing reaches new/, and the server takes the next message."""
    aborted = asyncio.Event()
    abort = local_module._Sink.abort

    def watched(self: local_module._Sink) -> None:
        abort(self)
        aborted.set()

    monkeypatch.setattr(local_module._Sink, "abort", watched)
    async with LocalMailServer(USERS, root=tmp_path) as mail:
        port = mail.smtp_address[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(10):
            await reader.readline()
            for command in (
                b"HELO localhost",
                b"MAIL FROM:<x@localhost>",
                b"RCPT TO:<alice@localhost>",
            ):
                writer.write(command + b"\r\n")
                await reader.readline()
            writer.write(b"DATA\r\n")
            assert (await reader.readline()).startswith(b"354")
            writer.write(b"Subject: cut\r\n\r\n" + b"line of text\r\n" * 20000)
            await writer.drain()
            sock = writer.get_extra_info("socket")
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            writer.transport.abort()
            await aborted.wait()
        assert files(tmp_path, "alice", "tmp") == []
        assert files(tmp_path, "alice", "new") == []
        assert (
            await asyncio.to_thread(smtplib_send, port, ["alice@localhost"], b"S: x\r\n\r\nx\r\n")
            == {}
        )


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_12mb_smtp_delivery_grows_the_server_by_under_4_mib(tmp_path: Path) -> None:
    """The local server's peak resident size while it receives and stores a 12 MB
    message (smtplib) grows by under 4 MiB (it held the whole message before)."""
    message = big_message()
    with measured("local", tmp_path, "alice", "pw") as (port, ask):
        smtplib_send(port, ["alice@localhost"], b"Subject: warm\r\n\r\n" + b".x\r\n" * 1000)
        before = ask("mark")
        assert smtplib_send(port, ["alice@localhost"], message) == {}
        growth = ask("peak") - before
        print(f"server peak RSS growth during a 12 MB SMTP delivery: {growth / MIB:.2f} MiB")
        stored = [p.read_bytes() for p in files(tmp_path, "alice", "new")]
        assert message in stored
        assert growth < 4 * MIB, f"server grew by {growth / MIB:.1f} MiB"
