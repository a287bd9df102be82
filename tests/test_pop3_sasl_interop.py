"""POP3 SASL against Dovecot (Debian's dovecot-pop3d, started on a free loopback port
with PLAIN, LOGIN and CRAM-MD5 enabled): the client's mechanisms, the choice of the best
one, a mechanism the server refuses, and the mailbox demo with --auth and --cafile."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from asyncnet.mail import POP3Client, POP3ReplyError

from .helpers import ROOT
from .pop3_dovecot import DOVECOT, MESSAGES, dovecot_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@dataclass
class Dovecot:
    port: int
    client_context: ssl.SSLContext
    ca_file: Path


@pytest.fixture
async def dovecot(tmp_path: Path) -> AsyncIterator[Dovecot]:
    """Dovecot with SASL PLAIN, LOGIN and CRAM-MD5, STLS from a trustme CA; alice/secret."""
    if DOVECOT is None:
        pytest.skip("dovecot is not installed (apt-get install dovecot-pop3d; .ci/run does)")
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path, ca_path = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(cert_path)
    cert.private_key_pem.write_to_path(key_path)
    ca.cert_pem.write_to_path(ca_path)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    async with dovecot_server(cert_path, key_path) as port:
        yield Dovecot(port, client, ca_path)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
async def test_each_mechanism_over_stls(dovecot: Dovecot, mechanism: str) -> None:
    """PLAIN, LOGIN and CRAM-MD5 log in to Dovecot over STLS; the maildrop is readable."""
    async with asyncio.timeout(60):
        async with POP3Client(
            "127.0.0.1", dovecot.port, tls="stls", ssl=dovecot.client_context, timeout=10
        ) as pop:
            assert pop.encrypted
            await pop.auth(mechanism, "alice", "secret")
            assert (await pop.stat())[0] == len(MESSAGES)


async def test_the_best_method_with_and_without_tls(dovecot: Dovecot) -> None:
    """Dovecot's CAPA lists SASL PLAIN LOGIN CRAM-MD5: over STLS the client picks PLAIN;
    without TLS it picks CRAM-MD5, which keeps the password off the wire (and offers
    the others only when tls="none" was said)."""
    async with asyncio.timeout(60):
        async with POP3Client(
            "127.0.0.1", dovecot.port, tls="stls", ssl=dovecot.client_context, timeout=10
        ) as pop:
            assert await pop.auth_methods() == ["plain", "login", "user", "cram-md5"]
            assert await pop.authenticate("alice", "secret") == "plain"
        async with POP3Client("127.0.0.1", dovecot.port, timeout=10) as pop:  # loopback: no TLS
            assert await pop.auth_methods() == ["cram-md5"]
            assert await pop.authenticate("alice", "secret") == "cram-md5"
            assert (await pop.stat())[0] == len(MESSAGES)
        async with POP3Client("127.0.0.1", dovecot.port, tls="none", timeout=10) as pop:
            assert await pop.auth_methods() == ["cram-md5", "plain", "login", "user"]


async def test_plain_in_cleartext_only_when_allowed(dovecot: Dovecot) -> None:
    """Dovecot (disable_plaintext_auth = no) would take PLAIN without TLS; the client
    sends it only when told (allow_cleartext_auth; tls="none" is tested above)."""
    async with asyncio.timeout(60):
        async with POP3Client(
            "127.0.0.1", dovecot.port, timeout=10, allow_cleartext_auth=True
        ) as pop:
            await pop.auth("PLAIN", "alice", "secret")
            assert (await pop.stat())[0] == len(MESSAGES)


async def test_refused_mechanism_and_wrong_password(dovecot: Dovecot) -> None:
    """XOAUTH2, which this Dovecot does not offer, is -ERR naming the mechanism and the
    session goes on; a wrong CRAM-MD5 password is -ERR [AUTH]."""
    async with asyncio.timeout(60):
        async with POP3Client(
            "127.0.0.1", dovecot.port, tls="stls", ssl=dovecot.client_context, timeout=20
        ) as pop:
            with pytest.raises(POP3ReplyError) as info:
                await pop.auth("XOAUTH2", "alice", "ya29.token")
            assert info.value.command == "AUTH XOAUTH2"
            assert "xoauth2" not in await pop.auth_methods(usable_only=False)
            with pytest.raises(POP3ReplyError) as wrong:
                await pop.auth("CRAM-MD5", "alice", "wrong")
            assert not wrong.value.temporary
            await pop.auth("CRAM-MD5", "alice", "secret")


def clean_environment() -> dict[str, str]:
    """This process's environment without the demo's password and token variables."""
    secrets = ("ASYNCNET_MAIL_PASSWORD", "ASYNCNET_OAUTH_TOKEN")
    return {k: v for k, v in os.environ.items() if k not in secrets}


async def mailbox(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run the mailbox demo; (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asyncnet.demos.mailbox",
        *args,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**clean_environment(), **env},
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_mailbox_demo_against_dovecot(dovecot: Dovecot) -> None:
    """mailbox --auth cram-md5 in cleartext; --tls stls --cafile --auth plain; a refused
    --auth is one line naming --auth; alice's password never defaults to "demo"."""
    port = ["--port", str(dovecot.port), "--user", "alice"]
    password = {"ASYNCNET_MAIL_PASSWORD": "secret"}
    status, out, err = await mailbox(*port, "--auth", "cram-md5", env=password)
    assert status == 0, err
    assert f"{len(MESSAGES)} message(s)" in out
    assert "dots" in out  # the table's Subject column
    cafile = ["--tls", "stls", "--cafile", str(dovecot.ca_file)]
    status, out, err = await mailbox(*port, *cafile, "--auth", "plain", env=password)
    assert status == 0, err
    assert f"{len(MESSAGES)} message(s)" in out
    status, out, err = await mailbox(
        *port, *cafile, "--auth", "xoauth2", env={"ASYNCNET_OAUTH_TOKEN": "ya29.token"}
    )
    assert status == 1
    assert err.count("\n") == 1, err
    assert "the server refused --auth xoauth2" in err
    assert "it offers: plain, login, user, cram-md5" in err
    status, out, err = await mailbox(*port, env={})
    assert status == 1
    assert "no password for alice@127.0.0.1: set $ASYNCNET_MAIL_PASSWORD" in err
