"""``open_read`` / ``open_write``: one FTP data transfer as an async stream.

This is what the tutorial's ftpStream did for ftplib: hide RETR/STOR, the passive
data connection and the final reply behind ``async for chunk in stream`` and
``await stream.write(data)``.  A stream holds its client's control connection
until it is closed (FTP runs one transfer at a time per connection).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Self

from ..errors import StateError
from ..protocols import LineBuffer

if TYPE_CHECKING:
    from ._datachannel import DataChannel
    from ._session import FTPSession

__all__ = ["RemoteReader", "RemoteWriter"]


class _SinkFailed(Exception):
    """Carries a pump sink's exception past the network error boundary untranslated."""


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
        self._stream: DataChannel | None = None
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
        size = size if size > 0 else self._client.block_size
        # What has arrived already is returned without a trip through the event loop
        # (or the error boundary): only waiting can time out or fail on the network.
        chunk = self._stream.read_nowait(size)
        if chunk is None:
            chunk = await self._client._data_io(self.command, self._stream.read(size))
        if chunk:
            self.bytes += len(chunk)
        else:
            self.eof = True
        return chunk

    def _complete(self) -> bool:
        return self.eof

    async def pump(self, sink: Callable[[bytes], object]) -> int:
        """Call ``sink(chunk)`` for the rest of the file, as it arrives; bytes read.

        Faster than ``async for`` (no task switch per chunk), for a ``sink`` that does
        not block: it runs in the event loop's callback.  What it raises ends the
        transfer and propagates.
        """
        if self._stream is None:
            raise StateError("use the reader inside `async with client.open_read(...)`")
        if self.eof:
            return 0
        before = self.bytes
        failures: list[Exception] = []

        def counted(chunk: bytes) -> None:
            self.bytes += len(chunk)
            try:
                sink(chunk)
            except Exception as exc:
                failures.append(exc)
                raise _SinkFailed from exc

        try:
            await self._client._data_io(
                self.command, self._stream.pump(counted, self._client.block_size)
            )
        except _SinkFailed:
            # The consumer's own error (a full disk, a callback's bug), raised as it
            # was: the network error boundary is for the data connection's failures.
            raise failures[0] from None
        self.eof = True
        return self.bytes - before

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
        data = bytes(data)
        if self._stream.write_nowait(data):
            # Sent (or buffered under the limit) without waiting; still give the other
            # tasks a turn, as a write that waited would.
            await asyncio.sleep(0)
        else:
            await self._client._data_io(self.command, self._stream.write(data))
        self.bytes += len(data)

    @property
    def can_sendfile(self) -> bool:
        """True when :meth:`sendfile` sends with ``sendfile(2)`` (plain FTP, asyncio's loop)."""
        return self._stream is not None and self._stream.can_sendfile

    async def sendfile(self, file: BinaryIO, offset: int, count: int) -> int:
        """Send up to ``count`` bytes of an open binary file from ``offset``; bytes sent."""
        if self._stream is None:
            raise StateError("use the writer inside `async with client.open_write(...)`")
        sent: int = await self._client._data_io(
            self.command, self._stream.sendfile(file, offset, count)
        )
        self.bytes += sent
        return sent
