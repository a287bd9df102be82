"""A raw FTP control connection for tests of the embedded server: bytes in, replies out.

ftplib and curl hide what the server sends; these helpers show every reply line, and
let a test do what no polite client does (hang up mid-command, reset a transfer).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

TIMEOUT = 10.0


@dataclass
class Control:
    """One control connection: ``reader``/``writer`` and the replies read so far."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    data_writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def reply(self) -> str:
        """The next whole reply (multi-line replies joined with newlines)."""
        async with asyncio.timeout(TIMEOUT):
            first = (await self.reader.readline()).decode()
            if not first:
                raise ConnectionError("the server closed the control connection")
            lines = [first.rstrip("\r\n")]
            if first[3:4] == "-":
                while True:
                    line = (await self.reader.readline()).decode()
                    if not line:
                        raise ConnectionError("the server closed mid-reply")
                    lines.append(line.rstrip("\r\n"))
                    if line[:3] == first[:3] and line[3:4] == " ":
                        break
        return "\n".join(lines)

    async def send(self, line: str) -> str:
        """Send one command line and return its reply."""
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def login(self, user: str, password: str) -> None:
        assert (await self.send(f"USER {user}")).startswith("331")
        assert (await self.send(f"PASS {password}")).startswith("230")

    async def passive(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """EPSV, then connect to the port it names."""
        answer = await self.send("EPSV")
        assert answer.startswith("229"), answer
        port = int(answer.split("|||")[1].split("|")[0])
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        self.data_writers.append(writer)  # closed with the control connection
        return reader, writer

    def reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0), as a crashed client's kernel does."""
        reset(self.writer)


def reset(writer: asyncio.StreamWriter) -> None:
    """Abort ``writer``'s connection with an RST rather than a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@contextlib.asynccontextmanager
async def control(address: tuple[str, int]) -> AsyncIterator[Control]:
    """A control connection past the greeting; closed (quietly) at the end."""
    async with asyncio.timeout(TIMEOUT):
        reader, writer = await asyncio.open_connection(*address)
    session = Control(reader, writer)
    try:
        assert (await session.reply()).startswith("220")
        yield session
    finally:
        for each in [*session.data_writers, writer]:
            each.close()
            with contextlib.suppress(ConnectionError):
                await each.wait_closed()
