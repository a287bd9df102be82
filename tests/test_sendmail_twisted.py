"""Interop with an independent SMTP server: Twisted's ESMTP (twisted.mail.smtp, in a
subprocess on 127.0.0.1:0, tests/twisted_smtp_server.py).  ``sendmail --file`` over
STARTTLS with ``--cafile`` and AUTH (PLAIN and LOGIN), the envelope from the message,
Bcc not transmitted; and Twisted's AUTH offered in cleartext, refused by the client."""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trustme

from asyncnet.mail import SMTPClient, SMTPReplyError, make_message

from .helpers import ROOT
from .test_sendmail_file import PREPARED, one_line_error, sendmail

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

pytest.importorskip("twisted.mail.smtp")

Copies = list[tuple[dict[str, Any], bytes]]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def cafile(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@asynccontextmanager
async def twisted_smtp(*args: str) -> AsyncIterator[int]:
    """tests/twisted_smtp_server.py with ``args``; yields its port; stopped by PID."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "tests" / "twisted_smtp_server.py"),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = await proc.stdout.readline()
        if not line.startswith(b"port "):
            assert proc.stderr is not None
            pytest.fail(f"Twisted ESMTP did not start: {line!r} {await proc.stderr.read()!r}")
        yield int(line.split()[1])
    finally:
        if proc.returncode is None:
            proc.terminate()
        async with asyncio.timeout(10):
            await proc.communicate()


def copies(outdir: Path) -> Copies:
    """What Twisted stored: (envelope, bytes) per recipient, in delivery order."""
    found = sorted(outdir.glob("*.json"), key=lambda p: int(p.stem))
    return [(json.loads(p.read_text()), p.with_suffix(".eml").read_bytes()) for p in found]


@pytest.fixture
def server_files(ca: trustme.CA, tmp_path: Path) -> Callable[[], list[str]]:
    """Arguments for a Twisted server with STARTTLS (a certificate for 127.0.0.1)."""

    def make() -> list[str]:
        cert = ca.issue_cert("127.0.0.1", "localhost")
        certfile, keyfile = tmp_path / "server.pem", tmp_path / "server.key"
        cert.cert_chain_pems[0].write_to_path(str(certfile))
        cert.private_key_pem.write_to_path(str(keyfile))
        return ["--tls", str(certfile), str(keyfile)]

    return make


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_eml_over_starttls_with_cafile_and_auth(
    mechanism: str, cafile: str, server_files: Callable[[], list[str]], tmp_path: Path
) -> None:
    """The prepared .eml through Twisted: STARTTLS (trusted via --cafile), AUTH, one copy
    per To/Cc/Bcc address, Bcc gone from the data, the -H header added."""
    outdir = tmp_path / "out"
    outdir.mkdir()
    eml = tmp_path / "msg.eml"
    eml.write_bytes(PREPARED)
    server_args = [str(outdir), *server_files(), "--mechanisms", mechanism]
    async with twisted_smtp(*server_args) as port:
        status, out, err = await sendmail(
            "--port", str(port), "--file", str(eml), "--cafile", cafile, "--user", "alice",
            "-H", "X-Tag: via Twisted",
            password="secret",
        )  # fmt: skip
    assert status == 0, err
    assert "sent to 3 of 3 recipient(s)" in out
    stored = copies(outdir)
    assert sorted(envelope["rcpt"] for envelope, _ in stored) == [
        "bob@example.org",
        "carol@example.org",
        "secret@example.org",
    ]
    for envelope, data in stored:
        assert envelope["mail_from"] == "alice@example.org"
        assert envelope["user"] == "alice"
        assert envelope["tls"] is True
        assert b"secret@example.org" not in data
        assert b"X-Tag: via Twisted\r\n" in data
        assert b"Subject: quarterly numbers\r\n" in data
        assert data.endswith(b"\r\n\r\nAttached, as promised.\r\n.leading dot stays\r\n")


async def test_wrong_password_and_no_login(
    ca: trustme.CA, server_files: Callable[[], list[str]], tmp_path: Path
) -> None:
    """Twisted's refusals, typed: 535 for a wrong password; 550 for a sender that did
    not log in (this server wants AUTH)."""
    outdir = tmp_path / "out"
    outdir.mkdir()
    client = ssl.create_default_context()
    ca.configure_trust(client)
    message = make_message(
        sender="alice@example.org", recipients=["bob@example.org"], subject="s", body="b\n"
    )
    async with twisted_smtp(str(outdir), *server_files()) as port, asyncio.timeout(30):
        with pytest.raises(SMTPReplyError, match="login refused: 535") as info:
            async with SMTPClient(
                "127.0.0.1", port, ssl=client, username="alice", password="wrong", timeout=10
            ):
                pass
        assert not info.value.temporary
        async with SMTPClient("127.0.0.1", port, ssl=client, timeout=10) as smtp:
            assert smtp.encrypted
            with pytest.raises(SMTPReplyError, match="550") as refused:
                await smtp.send_message(message)
        assert refused.value.code == 550
    assert copies(outdir) == []


async def test_cleartext_auth_offered_is_refused_unless_tls_none(tmp_path: Path) -> None:
    """Twisted without a certificate offers AUTH but no STARTTLS: the password is not
    sent (one line naming --tls none); with --tls none it logs in and delivers."""
    outdir = tmp_path / "out"
    outdir.mkdir()
    eml = tmp_path / "msg.eml"
    eml.write_bytes(PREPARED)
    async with twisted_smtp(str(outdir)) as port:
        status, _, err = await sendmail(
            "--port", str(port), "--file", str(eml), "--user", "alice", password="secret"
        )
        line = one_line_error(status, err)
        assert "--tls none" in line
        assert copies(outdir) == []
        status, out, err = await sendmail(
            "--port", str(port), "--file", str(eml), "--user", "alice", "--tls", "none",
            "--to", "bob@example.org",
            password="secret",
        )  # fmt: skip
    assert status == 0, err
    assert "sent to 1 of 1" in out
    [(envelope, _)] = copies(outdir)
    assert envelope == {
        "mail_from": "alice@example.org",
        "rcpt": "bob@example.org",
        "user": "alice",
        "tls": False,
    }
