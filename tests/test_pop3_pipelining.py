"""POP3 PIPELINING (RFC 2449): commands from concurrent callers and retr_many() go out
ahead of their replies when CAPA announces it, never more than max_in_flight, replies
read in order with the same dot-unstuffing and limits; one at a time otherwise."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from asyncnet.errors import ConfigurationError
from asyncnet.mail import (
    Maildirs,
    PasswordAuthenticator,
    POP3Client,
    POP3Error,
    POP3ProtocolError,
    POP3ReplyError,
    POP3Server,
)
from asyncnet.protocols import dot_stuff, ensure_final_newline

from .pop3_dovecot import DOVECOT, MESSAGES, dovecot_server
from .pop3_fakes import FakePOP3, scripted

pytestmark = pytest.mark.timeout(30)

BODIES = [
    b"Subject: one\r\n\r\nfirst\r\n",
    b"Subject: dots\r\n\r\n.\r\n..\r\n...\r\n.x\r\n",
    b"Subject: three\r\n\r\nno final newline",
    b"Subject: four\r\n\r\n" + b"line\r\n" * 5000,
]


def local_server(tmp_path: Path) -> POP3Server:
    maildirs = Maildirs(tmp_path, ["alice"])
    for body in BODIES:
        maildirs.deliver_now("alice", body)
    auth = PasswordAuthenticator({"alice": "wonderland"})
    return POP3Server(maildirs, auth, port=0, failed_login_delay=0.01)


async def test_local_server_retr_many_byte_exact(tmp_path: Path) -> None:
    """P1 through the pipeline: our server announces PIPELINING; retr_many gives each
    message byte-exact, in the order asked, the same as RETR one at a time."""
    async with local_server(tmp_path) as server:
        async with POP3Client(*server.address[:2], timeout=5, max_in_flight=3) as pop:
            await pop.apop("alice", "wonderland")
            one_by_one = {n: await pop.retr(n) for n in (await pop.list())}
            got = [item async for item in pop.retr_many([4, 1, 3, 2])]
            assert pop.pipelining
    assert [n for n, _ in got] == [4, 1, 3, 2]
    assert all(one_by_one[n] == data for n, data in got)
    assert sorted(one_by_one.values()) == sorted(ensure_final_newline(b) for b in BODIES)


async def test_local_server_answers_a_pipelined_read(tmp_path: Path) -> None:
    """Our server, sent a whole session in one write (logins and RETRs whose handlers
    wait on a thread), answers every command, in order."""
    async with local_server(tmp_path) as server:
        reader, writer = await asyncio.open_connection(*server.address[:2])
        await reader.readline()
        writer.write(b"USER alice\r\nPASS wonderland\r\nRETR 1\r\nRETR 3\r\nNOOP\r\nQUIT\r\n")
        async with asyncio.timeout(10):
            replies = await reader.read()
        writer.close()
        await writer.wait_closed()
    stored = [ensure_final_newline(body) for body in BODIES]  # as the Maildir keeps them
    expected = (
        b"+OK send PASS\r\n+OK alice has 4 message(s) (%d octets)\r\n" % sum(map(len, stored))
        + b"+OK %d octets\r\n" % len(stored[0])
        + dot_stuff(stored[0])
        + b"+OK %d octets\r\n" % len(stored[2])
        + dot_stuff(stored[2])
        + b"+OK\r\n+OK bye (0 message(s) deleted)\r\n"
    )
    assert replies == expected


async def test_errors_in_the_pipeline_keep_the_session(tmp_path: Path) -> None:
    """A -ERR in the middle ends the loop with POP3ReplyError after the replies in
    flight are read; leaving the loop early reads them too: the session goes on."""
    async with local_server(tmp_path) as server:
        async with POP3Client(*server.address[:2], timeout=5) as pop:
            await pop.apop("alice", "wonderland")
            seen: list[int] = []
            with pytest.raises(POP3ReplyError, match="no such message 9"):
                async for number, _ in pop.retr_many([1, 9, 2, 3]):
                    seen.append(number)
            assert seen == [1]
            assert await pop.noop() == ""
            first = None
            async for number, _ in pop.retr_many([1, 2, 3, 4]):
                first = number
                break
            assert first == 1
            assert (await pop.stat())[0] == 4
            heads = [item async for item in pop.top_many([2, 1], 0)]
            assert [n for n, _ in heads] == [2, 1]
            assert heads[1][1] == b"Subject: one\r\n\r\n"


async def test_concurrent_dele_is_pipelined_and_applied_at_quit(tmp_path: Path) -> None:
    """Callers issuing commands at once (gather) share the pipeline; QUIT waits for them."""
    async with local_server(tmp_path) as server:
        async with POP3Client(*server.address[:2], timeout=5) as pop:
            await pop.apop("alice", "wonderland")
            await pop.capa()
            replies = await asyncio.gather(*(pop.dele(n) for n in (1, 2, 3)))
            assert replies == [f"message {n} deleted" for n in (1, 2, 3)]
        async with POP3Client(*server.address[:2], timeout=5) as pop:
            await pop.apop("alice", "wonderland")
            assert (await pop.stat())[0] == 1


def pipelining_fake(window: int, *, announce: bool = True):  # type: ignore[no-untyped-def]
    """A server that reads ``window`` RETRs before it answers any (a client that does
    not pipeline would wait forever), then checks that no more arrive until it does."""

    async def script(fake: FakePOP3, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):  # type: ignore[no-untyped-def]
        writer.write(b"+OK hi\r\n")
        uids = list(fake.messages)
        while (line := await fake.readline(reader)) is not None:
            if line == "CAPA":
                writer.write(
                    b"+OK\r\nUIDL\r\n" + (b"PIPELINING\r\n" if announce else b"") + b".\r\n"
                )
            elif line.startswith("RETR "):
                batch = [line]
                while len(batch) < window:
                    batch.append(await fake.readline(reader) or "")
                with pytest.raises(TimeoutError):  # never more than the window in flight
                    await asyncio.wait_for(reader.readline(), 0.2)
                for command in batch:
                    data = fake.messages[uids[int(command.split()[1]) - 1]]
                    writer.write(b"+OK %d octets\r\n" % len(data) + dot_stuff(data))
                fake.commands.append("-- answered")
            elif line == "QUIT":
                writer.write(b"+OK bye\r\n")
                return
            else:
                writer.write(b"-ERR no\r\n")

    return script


@pytest.mark.parametrize("window", [1, 2, 4])
async def test_in_flight_is_bounded(window: int) -> None:
    """max_in_flight RETRs go out at once, never more; with 1, one at a time."""
    messages = {f"u{n}": b"Subject: %d\r\n\r\n.\r\nbody\r\n" % n for n in range(1, 9)}
    async with scripted(pipelining_fake(window), messages=messages) as fake:
        async with POP3Client("127.0.0.1", fake.port, timeout=5, max_in_flight=window) as pop:
            got = [item async for item in pop.retr_many(range(1, 9))]
    assert [data for _, data in got] == list(messages.values())
    answered = [i for i, c in enumerate(fake.commands) if c == "-- answered"]
    assert len(answered) == 8 // window


async def test_no_pipelining_without_the_capability() -> None:
    """A server whose CAPA does not list PIPELINING gets one command at a time."""
    messages = {f"u{n}": b"Subject: %d\r\n\r\nbody\r\n" % n for n in range(1, 4)}
    async with scripted(pipelining_fake(1, announce=False), messages=messages) as fake:
        async with POP3Client("127.0.0.1", fake.port, timeout=5, max_in_flight=8) as pop:
            got = [item async for item in pop.retr_many([1, 2, 3])]
            assert not pop.pipelining
    assert [n for n, _ in got] == [1, 2, 3]


async def test_a_message_over_the_limit_in_the_pipeline() -> None:
    """P4 through the pipeline: the second message is over max_message_size: a protocol
    error, the connection closed, the other replies in flight abandoned cleanly."""
    big = b"Subject: big\r\n\r\n" + b"x" * 4000 + b"\r\n"
    messages = {"u1": b"Subject: small\r\n\r\nhi\r\n", "u2": big, "u3": b"Subject: s\r\n\r\nx\r\n"}
    async with scripted(pipelining_fake(3), messages=messages) as fake:
        async with POP3Client(
            "127.0.0.1", fake.port, timeout=5, max_in_flight=3, max_message_size=1000
        ) as pop:
            got: list[int] = []
            with pytest.raises(POP3ProtocolError, match="larger than allowed"):
                async for number, _ in pop.retr_many([1, 2, 3]):
                    got.append(number)
            assert got == [1]
            with pytest.raises(POP3Error, match="unusable"):
                await pop.noop()
        assert "QUIT" not in fake.commands


async def test_a_drop_mid_pipeline() -> None:
    """P2 through the pipeline: the server closes in the middle of the second RETR."""
    async with FakePOP3(
        {"u1": b"Subject: a\r\n\r\na\r\n", "u2": b"Subject: b\r\n\r\n" + b"b\r\n" * 100},
        faults=["drop_mid_retr"],
    ) as fake:
        async with POP3Client("127.0.0.1", fake.port, timeout=5) as pop:
            pop.capabilities["PIPELINING"] = []  # the fake's CAPA does not list it
            pop.capabilities_known = True
            with pytest.raises(POP3Error):
                _ = [item async for item in pop.retr_many([2, 1])]


def test_max_in_flight_must_be_positive() -> None:
    """max_in_flight=0 would never send anything: refused, naming the setting."""
    with pytest.raises(ConfigurationError, match="max_in_flight"):
        POP3Client("127.0.0.1", max_in_flight=0)


@pytest.mark.slow
async def test_dovecot_announces_pipelining(tmp_path: Path) -> None:
    """Dovecot lists PIPELINING; retr_many reads its maildrop byte-exact in one batch."""
    if DOVECOT is None:
        pytest.skip("dovecot is not installed (apt-get install dovecot-pop3d; .ci/run does)")
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    client = ssl.create_default_context()
    ca.configure_trust(client)
    async with dovecot_server(tmp_path / "cert.pem", tmp_path / "key.pem") as port:
        async with POP3Client("127.0.0.1", port, tls="stls", ssl=client, timeout=10) as pop:
            await pop.authenticate("alice", "secret")
            await pop.capa()
            assert pop.pipelining
            sizes = await pop.list()
            got = {n: data async for n, data in pop.retr_many(sorted(sizes))}
            assert sorted(got.values()) == sorted(ensure_final_newline(m) for m in MESSAGES)
            assert all(len(got[n]) == sizes[n] for n in sizes)
            assert await asyncio.gather(*(pop.uidl(n) for n in sizes)) == [
                {n: uid} for n, uid in sorted((await pop.uidl()).items())
            ]
