"""``open_read`` / ``open_write``: one FTP data transfer as an async stream.

This is what the tutorial's ftpStream did for ftplib: hide RETR/STOR, the passive
data connection and the final reply behind ``async for chunk in stream`` and
``await stream.write(data)``.  A stream holds its client's control connection
until it is closed (FTP runs one transfer at a time per connection).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from ..errors import StateError
from ..protocols import LineBuffer

if TYPE_CHECKING:
    from ._session import FTPSession

__all__ = ["RemoteReader", "RemoteWriter"]


class _Transfer:
    def __init__(
        self,
        client: FTPSession,
        command: str,
        *,
        offset: int = 0,
        conn_type: Literal["I", "A"] = "I",
    ) -> None:
        self._client = client
        self.command = command
        self.offset = offset
        self._conn_type = conn_type
        self._stream: Any = None
        self.bytes = 0

    async def __aenter__(self) -> Self:
        self._stream = await self._client._begin_transfer(
            self.command, offset=self.offset, conn_type=self._conn_type
        )
        return self

    def _complete(self) -> bool:
        return True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await self._client._end_transfer(
                stream, self.command, ok=exc is None and self._complete(), error=exc
            )


class RemoteReader(_Transfer):
    """Bytes of a remote file: ``async for chunk in reader`` or ``await reader.read()``."""

    def __init__(self, client: FTPSession, command: str, **options: Any) -> None:
        super().__init__(client, command, **options)
        self.eof = False

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (a block when -1); ``b""`` at the end of the file."""
        if self._stream is None:
            raise StateError("use the reader inside `async with client.open_read(...)`")
        if self.eof:
            return b""
        chunk: bytes = await self._client._data_io(
            self.command, self._stream.read(size if size > 0 else self._client.block_size)
        )
        if chunk:
            self.bytes += len(chunk)
        else:
            self.eof = True
        return chunk

    def _complete(self) -> bool:
        return self.eof

    async def lines(self, max_line_length: int = 64 * 1024) -> AsyncIterator[bytes]:
        """The rest of the file as lines without their line ends, each bounded.

        A line longer than ``max_line_length`` raises :class:`~asyncnet.errors.LineTooLong`
        (a listing or text file from a hostile server cannot grow memory without bound).
        """
        buffer = LineBuffer(max_line_length, peer=self._client.peer)
        async for chunk in self:
            buffer.feed(chunk)
            while isinstance(line := buffer.next_line(), bytes):
                yield line
        buffer.feed_eof()
        while isinstance(line := buffer.next_line(), bytes):
            yield line

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.read()
        if not chunk:
            raise StopAsyncIteration
        return chunk


class RemoteWriter(_Transfer):
    """Bytes to a remote file: ``await writer.write(data)``; closing waits for 226."""

    async def write(self, data: bytes) -> None:
        """Send ``data`` on the data connection (waits while the server is slow)."""
        if self._stream is None:
            raise StateError("use the writer inside `async with client.open_write(...)`")
        await self._client._data_io(self.command, self._stream.write(bytes(data)))
        self.bytes += len(data)
