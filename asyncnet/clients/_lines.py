"""A line client: connect, send lines, read replies -- with limits and timeouts.

* ``connect_timeout`` (default: ``timeout``) bounds the connect;
* ``timeout`` bounds each send or read;
* :meth:`LineClient.request` takes a ``timeout`` for the line and its reply
  together, and :meth:`~asyncnet.clients._stream.StreamClient.deadline` bounds any
  sequence of operations as one.

Each limit raises :class:`~asyncnet.errors.OperationTimeout` naming the server and
the phase ("connect", "send", "read", "request", or the phase you give).
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from typing import Any, Self

from .._boundary import network_errors
from ..errors import LocalProtocolError
from ..protocols import EOF, NEED_DATA, LineBuffer
from ._stream import DEFAULT, StreamClient, Timeout, open_stream

__all__ = ["LineClient"]

_READ_SIZE = 64 * 1024


class LineClient(StreamClient):
    """A connection to a line-oriented server (the client half of ``LineHandler``).

    Use :meth:`connect`.  Errors are :class:`~asyncnet.errors.OperationTimeout` or
    :class:`~asyncnet.errors.NetworkError`, naming the server and the phase.
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
        super().__init__(reader, writer, peer, timeout=timeout)
        self.encoding = encoding
        self.delimiter = delimiter
        self.max_line_length = max_line_length
        self._lines = LineBuffer(max_line_length, delimiter=delimiter, peer=peer)

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
        connect_timeout: Timeout = DEFAULT,
        encoding: str = "utf-8",
        delimiter: bytes = b"\n",
        max_line_length: int = 64 * 1024,
    ) -> Self:
        """Open a connection to ``host:port`` (or the Unix socket ``path``)."""
        reader, writer, peer = await open_stream(
            host,
            port,
            path=path,
            ssl=ssl,
            server_hostname=server_hostname,
            timeout=timeout if connect_timeout is DEFAULT else connect_timeout,
            limit=max_line_length + len(delimiter),
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

    async def send_line(self, line: str, *, timeout: Timeout = DEFAULT) -> None:
        """Send one line (the delimiter is added); waits while the server is not reading."""
        data = line.encode(self.encoding)
        if self.delimiter in data:
            raise LocalProtocolError(f"line contains the delimiter {self.delimiter!r}: {line!r}")
        async with network_errors(self.peer, "send", self._limit(timeout)):
            self.writer.write(data + self.delimiter)
            await self.writer.drain()

    async def read_line(self, *, timeout: Timeout = DEFAULT) -> str | None:
        """Read one line without its delimiter (nor a ``\\r`` before ``\\n``); ``None``
        when the server closed.

        Raises :class:`~asyncnet.errors.LineTooLong` for a line over
        ``max_line_length`` (and on every later read: its tail is never a line).
        """
        lines = self._lines
        async with network_errors(self.peer, "read", self._limit(timeout)):
            while (line := lines.next_line()) is NEED_DATA:
                data = await self.reader.read(_READ_SIZE)
                if data:
                    lines.feed(data)
                else:
                    lines.feed_eof()
        if line is EOF:
            return None
        assert isinstance(line, bytes)
        return line.decode(self.encoding, "replace")

    async def request(self, line: str, *, timeout: Timeout = DEFAULT) -> str:
        """Send a line and return the reply line; ``timeout`` bounds both together."""
        async with self.deadline(self._limit(timeout), "request"):
            await self.send_line(line, timeout=None)
            reply = await self.read_line(timeout=None)
        if reply is None:
            raise self._no_reply()
        return reply
