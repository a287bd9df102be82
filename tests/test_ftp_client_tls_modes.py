"""Implicit FTPS (TLS from the first byte, port 990's way) against vsftpd.

vsftpd is the independent server here (Debian's, in C): with ``implicit_ssl=YES`` it
speaks TLS before its greeting and requires TLS (resuming the control session) on
every data connection.  Skipped where vsftpd is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from asyncnet.errors import ConfigurationError, NetworkError, OperationTimeout
from asyncnet.ftp import FTPClient

from .ftp_servers import VSFTPD, VSFTPD_CONF, VSFTPD_TLS, _connectable, _free_port, _stop

IMPLICIT = "implicit_ssl=YES\n"


@contextlib.asynccontextmanager
async def implicit_vsftpd(root: Path, workdir: Path, pem: Path) -> AsyncIterator[tuple[str, int]]:
    """vsftpd with implicit TLS on a free loopback port (re-tried if it is taken)."""
    assert VSFTPD is not None
    for _ in range(3):
        port = _free_port()
        conf = workdir / "implicit.conf"
        conf.write_text(
            VSFTPD_CONF.format(port=port, root=root) + VSFTPD_TLS.format(pem=pem) + IMPLICIT
        )
        proc = await asyncio.create_subprocess_exec(
            VSFTPD, str(conf), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        watcher = asyncio.ensure_future(proc.wait())
        try:
            if await _connectable(port, proc):
                yield "127.0.0.1", port
                return
        finally:
            await _stop(proc)
            await watcher
    raise RuntimeError("vsftpd did not start on a free port after 3 tries")


def test_tls_modes_and_default_ports() -> None:
    """tls=True is explicit (port 21), 'implicit' defaults to 990; bad values are one line."""
    assert FTPClient().port == 21
    assert FTPClient(tls=True).tls_mode == "explicit"
    assert FTPClient(tls="implicit").port == 990
    assert FTPClient(tls="implicit", port=2990).port == 2990
    with pytest.raises(
        ConfigurationError, match="tls must be False, True, 'explicit' or 'implicit'"
    ):
        FTPClient(tls="starttls")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ssl=False turns it off"):
        FTPClient(tls="implicit", ssl=False)
    with pytest.raises(ConfigurationError, match="not both"):
        FTPClient(
            tls=True, ssl=ssl.create_default_context(), ssl_context=ssl.create_default_context()
        )


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.skipif(VSFTPD is None, reason="vsftpd is not installed (apt-get install vsftpd)")
async def test_implicit_ftps_against_vsftpd(tmp_path: Path) -> None:
    """TLS before the greeting, PBSZ/PROT P, TLS data both ways; an untrusted CA is refused."""
    ca = trustme.CA()
    pem = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    root = tmp_path / "root"
    root.mkdir()
    data = os.urandom(2_000_000)
    (tmp_path / "up.bin").write_bytes(data)
    async with implicit_vsftpd(root, tmp_path, pem) as (host, port):
        async with asyncio.timeout(30):
            async with FTPClient(host, port, tls="implicit", ssl=context) as ftp:
                assert await ftp.store("up.bin", tmp_path / "up.bin") == len(data)
                result = await ftp.download("up.bin", tmp_path / "down.bin")
                assert [e.name for e in await ftp.list()] == ["up.bin"]
            with pytest.raises(NetworkError, match=r"connect .* failed: TLS: CERTIFICATE_VERIFY"):
                await FTPClient(host, port, tls="implicit", command_timeout=5).start()
            # Plain FTP to an implicit-TLS port: the greeting never comes in cleartext.
            with pytest.raises((NetworkError, OperationTimeout)):
                await FTPClient(host, port, connect_timeout=1, command_timeout=1).start()
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert (root / "up.bin").read_bytes() == data
