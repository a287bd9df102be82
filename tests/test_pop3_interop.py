"""Our POP3 client against independent POP3 servers: Dovecot (Debian's dovecot-pop3d) and
Twisted's twisted.mail.pop3, each in a subprocess on 127.0.0.1, with UIDL, TOP and STLS."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from asyncnet.mail import FetchStore, POP3Client, POP3ReplyError, fetch_all
from asyncnet.protocols import ensure_final_newline

from .helpers import ROOT
from .pop3_dovecot import DOVECOT, MESSAGES, dovecot_server, stop, write_maildir


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[Path, Path, ssl.SSLContext]]:
    """(cert file, key file, client context) from a trustme CA."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(cert_path)
    cert.private_key_pem.write_to_path(key_path)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return cert_path, key_path, client


@pytest.fixture
async def dovecot(tls: tuple[Path, Path, ssl.SSLContext]) -> AsyncIterator[int]:
    """Dovecot's POP3 server in a subprocess with a passwd-file user alice/secret."""
    if DOVECOT is None:
        pytest.skip("dovecot is not installed (apt-get install dovecot-pop3d; .ci/run does)")
    cert, key, _ = tls
    async with dovecot_server(cert, key) as port:
        yield port


@pytest.mark.slow
async def test_dovecot_uidl_top_retr_stls(
    dovecot: int, tls: tuple[Path, Path, ssl.SSLContext], tmp_path: Path
) -> None:
    """Against Dovecot: STLS, login, STAT, UIDL (stable), TOP, RETR byte-exact, DELE+QUIT."""
    _, _, client_ctx = tls
    options = {"tls": "stls", "ssl_context": client_ctx, "timeout": 10}
    async with asyncio.timeout(60):
        async with POP3Client("127.0.0.1", dovecot, **options) as pop:  # type: ignore[arg-type]
            assert pop.encrypted
            await pop.login("alice", "secret")
            count, _ = await pop.stat()
            assert count == 3
            uids = await pop.uidl()
            assert len(set(uids.values())) == 3
            bodies = {n: await pop.retr(n) for n in sorted(uids)}
            assert sorted(bodies.values()) == sorted(ensure_final_newline(m) for m in MESSAGES)
            listing = await pop.list()
            assert all(listing[n] == len(bodies[n]) for n in listing)
            number = next(n for n, b in bodies.items() if b"Subject: third" in b)
            top = await pop.top(number, 1)
            assert top.endswith(b"\r\n\r\nline 1\r\n")
            await pop.dele(number)
        async with POP3Client("127.0.0.1", dovecot, **options) as pop:  # type: ignore[arg-type]
            await pop.login("alice", "secret")
            after = await pop.uidl()
            assert sorted(after.values()) == sorted(u for n, u in uids.items() if n != number)
            with pytest.raises(POP3ReplyError):
                await pop.login("alice", "secret")  # already in TRANSACTION: -ERR
        async with POP3Client("127.0.0.1", dovecot, **options) as pop:  # type: ignore[arg-type]
            await pop.login("alice", "secret")
            store = FetchStore(tmp_path / "saved", "alice@dovecot")
            report = await fetch_all(pop, store, delete=True)
            assert report.ok
            assert len(report.stored) == 2
        async with POP3Client("127.0.0.1", dovecot, **options) as pop:  # type: ignore[arg-type]
            await pop.login("alice", "secret")
            assert await pop.stat() == (0, 0)


@pytest.mark.slow
async def test_dovecot_wrong_password(dovecot: int, tls: tuple[Path, Path, ssl.SSLContext]) -> None:
    """Against Dovecot: a wrong password is a -ERR reply, typed."""
    async with asyncio.timeout(60):
        async with POP3Client(
            "127.0.0.1", dovecot, tls="stls", ssl_context=tls[2], timeout=20
        ) as pop:
            with pytest.raises(POP3ReplyError):
                await pop.login("alice", "wrong")


@pytest.fixture
async def twisted_pop3(
    tmp_path: Path, tls: tuple[Path, Path, ssl.SSLContext]
) -> AsyncIterator[int]:
    """Twisted's POP3 server (tests/twisted_pop3_server.py) in a subprocess."""
    pytest.importorskip("twisted.mail.pop3")
    cert, key, _ = tls
    maildir = tmp_path / "twisted" / "alice"
    write_maildir(maildir)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "twisted_pop3_server.py"),
            str(maildir),
            str(cert),
            str(key),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        if not line.startswith(b"port "):
            assert proc.stderr is not None
            pytest.fail(f"twisted POP3 server did not start: {line!r} {proc.stderr.read()!r}")
        yield int(line.split()[1])
    finally:
        stop(proc)


@pytest.mark.slow
async def test_twisted_uidl_top_retr_stls(
    twisted_pop3: int, tls: tuple[Path, Path, ssl.SSLContext]
) -> None:
    """Against twisted.mail.pop3: STLS, login, UIDL, TOP, RETR, DELE+QUIT."""
    options = {"tls": "stls", "ssl_context": tls[2], "timeout": 10}
    async with asyncio.timeout(60):
        async with POP3Client("127.0.0.1", twisted_pop3, **options) as pop:  # type: ignore[arg-type]
            assert pop.encrypted
            await pop.login("alice", "secret")
            assert (await pop.stat())[0] == 3
            uids = await pop.uidl()
            assert len(set(uids.values())) == 3
            bodies = sorted([await pop.retr(n) for n in sorted(uids)])
            assert bodies == sorted(ensure_final_newline(m) for m in MESSAGES)
            top = await pop.top(1, 0)
            assert top.startswith(b"From: ")
            assert top.endswith(b"\r\n\r\n")
            await pop.dele(1)
        async with POP3Client("127.0.0.1", twisted_pop3, **options) as pop:  # type: ignore[arg-type]
            await pop.login("alice", "secret")
            assert sorted((await pop.uidl()).values()) == sorted(
                u for n, u in uids.items() if n != 1
            )


@pytest.mark.slow
async def test_twisted_uidl_of_one_message(
    twisted_pop3: int, tls: tuple[Path, Path, ssl.SSLContext]
) -> None:
    """twisted.mail.pop3 answers ``UIDL n`` with ``+OK <uid>`` (no message number): the
    client takes it as message n's unique-id, the same one the full listing gives."""
    options = {"tls": "stls", "ssl_context": tls[2], "timeout": 10}
    async with asyncio.timeout(60):
        async with POP3Client("127.0.0.1", twisted_pop3, **options) as pop:  # type: ignore[arg-type]
            await pop.login("alice", "secret")
            listing = await pop.uidl()
            for number, uid in listing.items():
                assert await pop.uidl(number) == {number: uid}
