"""Independent FTP servers for interoperability tests: pyftpdlib and vsftpd.

Each runs as a subprocess on 127.0.0.1 and is stopped by its PID when the block
ends.  pyftpdlib binds port 0 and prints the port; vsftpd cannot report its
port, so it gets a free one (re-tried if another process takes it first).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from benchmarks.transfers import VSFTPD_CONF, VSFTPD_TLS

VSFTPD = shutil.which("vsftpd") or next(
    (p for p in ("/usr/sbin/vsftpd", "/sbin/vsftpd") if os.path.exists(p)), None
)

PYFTPDLIB_MAIN = """
import os, sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

authorizer = DummyAuthorizer()
authorizer.add_user("guest", os.environ["FTP_TEST_PASSWORD"], sys.argv[1], perm="elradfmwMT")
FTPHandler.authorizer = authorizer
server = FTPServer(("127.0.0.1", 0), FTPHandler)
print(server.address[1], flush=True)
server.serve_forever(timeout=0.5)
"""


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            async with asyncio.timeout(5):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def pyftpdlib_server(root: Path, password: str) -> AsyncIterator[tuple[str, int]]:
    """pyftpdlib serving ``root`` to user "guest" on 127.0.0.1 (port 0)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PYFTPDLIB_MAIN,
        str(root),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "FTP_TEST_PASSWORD": password},
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            line = await proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"pyftpdlib did not start: {line!r}")
        yield "127.0.0.1", int(line)
    finally:
        await _stop(proc)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _connectable(port: int, proc: asyncio.subprocess.Process) -> bool:
    """Wait until vsftpd accepts on ``port`` (False if it exited first).

    vsftpd announces nothing when it listens: trying to connect, bounded in time, is
    the only way to know.
    """
    async with asyncio.timeout(10):
        while proc.returncode is None:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except ConnectionRefusedError:
                await asyncio.sleep(0.02)  # vsftpd has no readiness signal to wait on
                continue
            writer.close()
            await writer.wait_closed()
            return True
    return False


@contextlib.asynccontextmanager
async def vsftpd_server(
    root: Path, workdir: Path, *, tls_pem: Path | None = None
) -> AsyncIterator[tuple[str, int]]:
    """Debian's vsftpd serving ``root`` anonymously (read-write) on 127.0.0.1.

    With ``tls_pem`` (key and certificate) it requires explicit TLS on both the
    control and the data connections.
    """
    assert VSFTPD is not None
    for _ in range(3):
        port = _free_port()
        conf = workdir / "vsftpd.conf"
        text = VSFTPD_CONF.format(port=port, root=root)
        if tls_pem is not None:
            text += VSFTPD_TLS.format(pem=tls_pem)
        conf.write_text(text)
        proc = await asyncio.create_subprocess_exec(
            VSFTPD,
            str(conf),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
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
