"""Active mode (``passive=False``): the server connects to the client (EPRT, else PORT).

Against pyftpdlib and vsftpd (independent servers; vsftpd marked slow and skipped
when missing), on 127.0.0.1: the client listens on its control connection's local
address and takes the data connection from the server's host only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from asyncnet.errors import ConfigurationError
from asyncnet.ftp import FTPClient

from .ftp_servers import VSFTPD, pyftpdlib_server, vsftpd_server

PASSWORD = "active-secret"


@contextlib.asynccontextmanager
async def pyftpdlib(root: Path, workdir: Path) -> AsyncIterator[tuple[str, int]]:
    async with pyftpdlib_server(root, PASSWORD) as address:
        yield address


SERVERS: list[Any] = [
    pytest.param(pyftpdlib, "guest", id="pyftpdlib"),
    pytest.param(
        vsftpd_server,
        "anonymous",
        id="vsftpd",
        marks=[
            pytest.mark.slow,
            pytest.mark.skipif(VSFTPD is None, reason="vsftpd is not installed"),
        ],
    ),
]


def test_passive_setting_is_checked() -> None:
    """passive=True is the default pair; anything but a bool or EPSV/PASV is one line."""
    assert FTPClient(passive=True)._ftp.passive_commands == ("epsv", "pasv")
    assert FTPClient(passive=False)._ftp.active
    with pytest.raises(ConfigurationError, match=r"passive must be True, False \(active mode"):
        FTPClient(passive=("port",))


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("serve", "user"), SERVERS)
async def test_active_mode_transfers_both_ways(
    tmp_path: Path, serve: Callable[..., Any], user: str
) -> None:
    """STOR, RETR (resumed with REST), MLSD/LIST, all over data connections the server opens."""
    root = tmp_path / "root"
    root.mkdir()
    data = os.urandom(3_000_000 + 7)
    (tmp_path / "up.bin").write_bytes(data)
    async with serve(root, tmp_path) as (host, port):
        client = FTPClient(host, port, user=user, password=PASSWORD, passive=False)
        sent: list[str] = []
        command = client._ftp.command

        async def recording(line: str | None = None, *args: Any, **kwargs: Any) -> Any:
            if line:
                sent.append(line.split()[0])
            return await command(line, *args, **kwargs)

        client._ftp.command = recording  # type: ignore[method-assign]
        async with asyncio.timeout(40), client as ftp:
            assert await ftp.store("up.bin", tmp_path / "up.bin") == len(data)
            assert [e.name for e in await ftp.list()] == ["up.bin"]
            chunks: list[bytes] = []
            assert await ftp.retrieve("up.bin", chunks.append, offset=1000) == len(data) - 1000
            result = await ftp.download("up.bin", tmp_path / "down.bin")
    assert "EPRT" in sent or "PORT" in sent
    assert "EPSV" not in sent
    assert "PASV" not in sent
    assert b"".join(chunks) == data[1000:]
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert (root / "up.bin").read_bytes() == data


class PortOnlyServer:
    """A scripted control server without EPRT (502): PORT it takes, then connects back."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.commands: list[str] = []
        self.port_argument = ""
        self.server: asyncio.Server | None = None

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        replies = {"USER": b"331 go on", "PASS": b"230 in", "TYPE": b"200 ok", "QUIT": b"221 bye"}
        writer.write(b"220 port-only fake\r\n")
        while line := (await reader.readline()).decode().strip():
            verb, _, rest = line.partition(" ")
            self.commands.append(verb)
            if verb == "PORT":
                self.port_argument = rest
                writer.write(b"200 PORT ok\r\n")
            elif verb == "RETR":
                writer.write(b"150 connecting to you\r\n")
                numbers = [int(n) for n in self.port_argument.split(",")]
                host = ".".join(map(str, numbers[:4]))
                _, data_writer = await asyncio.open_connection(host, numbers[4] * 256 + numbers[5])
                data_writer.write(self.data)
                data_writer.close()
                await data_writer.wait_closed()
                writer.write(b"226 done\r\n")
            else:
                writer.write(replies.get(verb, b"502 not implemented") + b"\r\n")
            await writer.drain()
            if verb == "QUIT":
                break
        writer.close()

    async def __aenter__(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self.session, "127.0.0.1", 0)
        return "127.0.0.1", int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


@pytest.mark.timeout(30)
async def test_port_is_the_fallback_when_eprt_is_not_implemented() -> None:
    """EPRT answered 502: PORT with the control connection's local address, then RETR."""
    data = os.urandom(700_000)
    fake = PortOnlyServer(data)
    async with fake as (host, port):
        async with asyncio.timeout(20), FTPClient(host, port, passive=False) as ftp:
            chunks: list[bytes] = []
            assert await ftp.retrieve("f.bin", chunks.append) == len(data)
    assert b"".join(chunks) == data
    assert fake.commands[fake.commands.index("EPRT") + 1] == "PORT"
    assert fake.port_argument.startswith("127,0,0,1,")
    assert "EPSV" not in fake.commands
