"""A line client: connect, send lines, read replies -- with limits and timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
from types import TracebackType
from typing import Any, Self

from ..errors import LineTooLong, NetworkError
from ._errors import network_errors

__all__ = ["LineClient"]


class LineClient:
    """A connection to a line-oriented server (the client half of :class:`LineHandler`).

    Use :meth:`connect`; every operation is bounded by ``timeout`` seconds
    (``None`` = wait forever) and raises :class:`~asyncnet.errors.OperationTimeout`
    or :class:`~asyncnet.errors.NetworkError` naming the server and the phase.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Any,
        *,
        timeout: float | None,
        encoding: str,
        delimiter: bytes,
        max_line_length: int,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.timeout = timeout
        self.encoding = encoding
        self.delimiter = delimiter
        self.max_line_length = max_line_length

    @classmethod
    async def connect(
        cls,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        path: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float | None = 10.0,
        connect_timeout: float | None = None,
        encoding: str = "utf-8",
        delimiter: bytes = b"\n",
        max_line_length: int = 64 * 1024,
    ) -> Self:
        """Open a connection to ``host:port`` (or the Unix socket ``path``)."""
        peer: Any = path if path is not None else (host, port)
        limit = max_line_length + len(delimiter)
        async with network_errors(peer, "connect", connect_timeout or timeout):
            if path is not None:
                reader, writer = await asyncio.open_unix_connection(
                    path, ssl=ssl, server_hostname=server_hostname, limit=limit
                )
            else:
                if port is None:
                    raise ValueError("LineClient.connect() needs a port (or a path)")
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=ssl, server_hostname=server_hostname, limit=limit
                )
        return cls(
            reader,
            writer,
            peer,
            timeout=timeout,
            encoding=encoding,
            delimiter=delimiter,
            max_line_length=max_line_length,
        )

    @property
    def local_address(self) -> Any:
        """Our end of the connection (the ephemeral port the OS chose)."""
        return self.writer.get_extra_info("sockname")

    async def send_line(self, line: str) -> None:
        """Send one line (the delimiter is added); waits while the server is not reading."""
        data = line.encode(self.encoding)
        if self.delimiter in data:
            raise ValueError(f"line contains the delimiter {self.delimiter!r}")
        async with network_errors(self.peer, "send", self.timeout):
            self.writer.write(data + self.delimiter)
            await self.writer.drain()

    async def read_line(self) -> str | None:
        """Read one line without its delimiter; ``None`` when the server closed."""
        async with network_errors(self.peer, "read", self.timeout):
            try:
                raw = await self.reader.readuntil(self.delimiter)
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    return None
                raw = exc.partial
            except asyncio.LimitOverrunError as exc:
                raise LineTooLong(self.max_line_length, exc.consumed, self.peer) from None
        text = raw.decode(self.encoding, "replace")
        if text.endswith(self.delimiter.decode(self.encoding)):
            text = text[: -len(self.delimiter.decode(self.encoding))]
        return text.removesuffix("\r")

    async def request(self, line: str) -> str:
        """Send a line and return the reply line; :class:`NetworkError` if the server closed."""
        await self.send_line(line)
        reply = await self.read_line()
        if reply is None:
            raise NetworkError(
                f"{self.peer!r} closed the connection instead of replying", self.peer, "read"
            )
        return reply

    async def close(self) -> None:
        """Close the connection and wait until it is closed (errors are ignored)."""
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
