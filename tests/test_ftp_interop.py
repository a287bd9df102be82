"""The same client code against three FTP server implementations.

aioftp (the library the client is built on), pyftpdlib (independent, from PyPI)
and vsftpd (independent, in C, from Debian; marked slow, skipped when missing).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from asyncnet.errors import NetworkError
from asyncnet.ftp import FTPAuthError, FTPClient, FTPPermanentError, FTPServer

from .ftp_servers import VSFTPD, pyftpdlib_server, vsftpd_server

PASSWORD = "interop-secret"


@contextlib.asynccontextmanager
async def aioftp_server(root: Path, workdir: Path) -> AsyncIterator[tuple[str, int]]:
    async with FTPServer(root, users={"guest": PASSWORD}) as server:
        yield server.address


@contextlib.asynccontextmanager
async def pyftpdlib(root: Path, workdir: Path) -> AsyncIterator[tuple[str, int]]:
    async with pyftpdlib_server(root, PASSWORD) as address:
        yield address


SERVERS: list[Any] = [
    pytest.param(aioftp_server, "guest", id="aioftp"),
    pytest.param(pyftpdlib, "guest", id="pyftpdlib"),
    pytest.param(
        vsftpd_server,
        "anonymous",
        id="vsftpd",
        marks=[
            pytest.mark.slow,
            pytest.mark.skipif(
                VSFTPD is None,
                reason="vsftpd is not installed (Debian: apt-get install vsftpd)",
            ),
        ],
    ),
]


@pytest.mark.parametrize(("serve", "user"), SERVERS)
async def test_same_client_code_works_against_each_server(
    tmp_path: Path, serve: Callable[..., Any], user: str
) -> None:
    """List, store, retrieve, retrieve_lines, download (verified), resume, rename, remove."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "notes.txt").write_bytes(b"one\r\ntwo\r\nthree\r\n")
    data = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "big.bin").write_bytes(data)
    async with serve(root, tmp_path) as (host, port):
        client = FTPClient(host, port, user=user, password=PASSWORD, command_timeout=10)
        async with asyncio.timeout(60), client as ftp:
            assert await ftp.store("big.bin", tmp_path / "big.bin") == len(data)
            names = {entry.name: entry for entry in await ftp.list()}
            assert names["big.bin"].type == "file"
            assert names["big.bin"].size == len(data)
            assert names["notes.txt"].type == "file"

            chunks: list[bytes] = []
            assert await ftp.retrieve("big.bin", chunks.append) == len(data)
            assert b"".join(chunks) == data
            lines: list[str] = []
            assert await ftp.retrieve_lines("notes.txt", lines.append) == 3
            assert lines == ["one", "two", "three"]

            fingerprint = await ftp.fingerprint("big.bin")
            assert fingerprint.size == len(data)
            assert fingerprint.modify

            # A .part from an "earlier run", with the sidecar that run would have written.
            dest = tmp_path / "out" / "big.bin"
            dest.parent.mkdir()
            (tmp_path / "out" / "big.bin.part").write_bytes(data[:1_000_000])
            (tmp_path / "out" / "big.bin.part.json").write_text(
                json.dumps(dataclasses.asdict(fingerprint))
            )
            result = await ftp.download("big.bin", dest, resume=True)
            assert result.resumed_from == 1_000_000
            assert result.sha256 == hashlib.sha256(data).hexdigest()
            assert dest.read_bytes() == data

            async with ftp.open_read("big.bin") as source:  # leave early: ABOR
                assert await source.read(1000)
            assert (await ftp.fingerprint("notes.txt")).size == 17  # still in step

            await ftp.mkdir("dir")
            await ftp.rename("big.bin", "dir/moved.bin")
            assert [e.name for e in await ftp.list("dir")] == ["moved.bin"]
            await ftp.remove("dir/moved.bin")
            await ftp.rmdir("dir")
            with pytest.raises(FTPPermanentError) as caught:
                await ftp.retrieve("missing.bin", chunks.append)
            assert caught.value.code == "550"
    assert sorted(os.listdir(root)) == ["notes.txt"]


@pytest.mark.slow
@pytest.mark.skipif(VSFTPD is None, reason="vsftpd is not installed (apt-get install vsftpd)")
async def test_explicit_ftps_against_vsftpd(tmp_path: Path) -> None:
    """AUTH TLS, then TLS data connections resuming the control session (vsftpd insists).

    A client that does not trust the certificate, or that does not use TLS, is refused.
    """
    ca = trustme.CA()
    pem = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    root = tmp_path / "root"
    root.mkdir()
    data = os.urandom(500_000)
    async with vsftpd_server(root, tmp_path, tls_pem=pem) as (host, port):
        async with asyncio.timeout(30):
            async with FTPClient(host, port, tls=True, ssl_context=context) as ftp:
                assert await ftp.store("secret.bin", data) == len(data)
                assert [e.name for e in await ftp.list()] == ["secret.bin"]
                result = await ftp.download("secret.bin", tmp_path / "secret.bin")
            with pytest.raises(NetworkError, match=r"AUTH TLS .* failed: TLS: CERTIFICATE_VERIFY"):
                await FTPClient(host, port, tls=True, command_timeout=5).start()
            with pytest.raises(FTPAuthError, match="530"):
                await FTPClient(host, port, command_timeout=5).start()
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert (root / "secret.bin").read_bytes() == data
