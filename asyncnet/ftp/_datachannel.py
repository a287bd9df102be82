"""One FTP data connection as an asyncio protocol: the bytes of a transfer, fast.

aioftp's data stream puts each block through a StreamReader (two more copies of
every byte: into its buffer, then out of it), an ``asyncio.wait_for`` (a task per
read on Python 3.11) and its throttles, and the StreamReader's 8 KiB line limit
(the control connection's) paused the socket every 16 KiB.  A transfer is a plain
sequence of blocks, so here the blocks the transport receives (up to 256 KiB each,
one copy out of the kernel) are handed out as they are, a read waits on the loop
only when nothing has arrived yet, and the idle timeout is armed only while
waiting.  Measured on loopback against vsftpd (20 MiB, sha256 on the fly): see
``python -m benchmarks.transfers`` and docs/ftp.md.

Reading pauses the socket while more than :data:`HIGH_WATER` bytes wait unread
(memory stays bounded however slow the consumer); writing waits while the
transport holds more than :data:`HIGH_WATER` unsent.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Callable
from typing import Any, BinaryIO, cast

__all__ = ["HIGH_WATER", "DataChannel"]

HIGH_WATER = 1024 * 1024
"""Bytes received but unread (or written but unsent) before the channel waits."""


class DataChannel(asyncio.Protocol):
    """The bytes of one transfer: ``await read(n)``, ``await write(data)``, ``close()``."""

    def __init__(self, idle_timeout: float | None) -> None:
        self.idle_timeout = idle_timeout
        self._loop = asyncio.get_running_loop()
        self._sink: Callable[[bytes], object] | None = None
        self._sink_error: Exception | None = None
        self._last_data = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused_reading = False
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.connected = asyncio.get_running_loop().create_future()
        """Done when the connection is made (what an active-mode listener waits on)."""

    # -- protocol callbacks --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=HIGH_WATER)
        if not self.connected.done():
            self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._sink is not None:
            self._last_data = self._loop.time()
            try:
                self._sink(data)
            except Exception as exc:  # the consumer's failure ends the transfer, in its task
                self._sink_error = exc
                self._sink = None
                self._pause()
                self._wake()
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER:
            self._pause()
        self._wake()

    def _pause(self) -> None:
        if not self._paused_reading and self.transport is not None:
            self._paused_reading = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self._paused_reading and self.transport is not None:
            self._paused_reading = False
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # the server's EOF ends the transfer: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        if exc is not None and self._error is None:
            self._error = exc
        self._wake()
        # A result, not an exception: a waiting write() raises itself (below), and a
        # future nobody awaits must not log "exception was never retrieved".
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        if self._drain is None or self._drain.done():
            self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- reading -------------------------------------------------------------------

    def read_nowait(self, size: int) -> bytes | None:
        """Up to ``size`` bytes already received; ``b""`` at the end; None to wait."""
        if self._chunks:
            chunk = self._chunks.popleft()
            if len(chunk) > size:
                # Slicing copies; blocks the size of a read (the default) are not sliced.
                self._chunks.appendleft(chunk[size:])
                chunk = chunk[:size]
            self._buffered -= len(chunk)
            if self._buffered <= HIGH_WATER // 4:
                self._resume()
            return chunk
        self._resume()
        if self._eof:
            if self._error is not None:
                raise self._error
            return b""
        return None

    async def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; ``b""`` once the server has closed the connection.

        Raises ``TimeoutError`` when nothing arrives for ``idle_timeout`` seconds.
        """
        while (chunk := self.read_nowait(size)) is None:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(self.idle_timeout):
                    await self._waiter
            finally:
                self._waiter = None
        return chunk

    async def pump(self, sink: Callable[[bytes], object], max_size: int) -> None:
        """Call ``sink(block)`` for every block (at most ``max_size`` bytes) until EOF.

        The fastest way to consume a transfer: each block goes from the transport's
        callback straight to ``sink``, with no task switch and no future per block
        (what the caller does per block is all that is left).  ``sink`` runs in the
        event loop's callback, so it must not block for long; whatever it raises ends
        the transfer and is raised here.  ``TimeoutError`` when no byte arrives for
        ``idle_timeout`` seconds.
        """

        def bounded(data: bytes) -> None:
            if len(data) <= max_size:
                sink(data)
            else:  # slicing copies: only blocks above the read size pay it
                for start in range(0, len(data), max_size):
                    sink(data[start : start + max_size])

        while self._chunks:  # what arrived before the sink was set
            chunk = self._chunks.popleft()
            self._buffered -= len(chunk)
            bounded(chunk)
        self._sink = bounded
        self._resume()
        try:
            while not self._eof and self._sink_error is None:
                self._waiter = self._loop.create_future()
                self._last_data = self._loop.time()
                if self.idle_timeout is not None:
                    self._timer = self._loop.call_at(
                        self._last_data + self.idle_timeout, self._check_idle
                    )
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                    if self._timer is not None:
                        self._timer.cancel()
                        self._timer = None
        finally:
            self._sink = None
        if self._sink_error is not None:
            error, self._sink_error = self._sink_error, None
            raise error
        if self._error is not None:
            raise self._error

    def _check_idle(self) -> None:
        # One timer per idle period, moved on only when it fires: cheaper than
        # rescheduling it for every block.
        self._timer = None
        if self._waiter is None or self._waiter.done() or self.idle_timeout is None:
            return
        due = self._last_data + self.idle_timeout
        if self._loop.time() >= due:
            self._waiter.set_exception(TimeoutError())
        else:
            self._timer = self._loop.call_at(due, self._check_idle)

    # -- writing -------------------------------------------------------------------

    def write_nowait(self, data: bytes) -> bool:
        """Send ``data`` if that needs no wait; False (nothing sent) when :meth:`write` must."""
        transport = self.transport
        if (
            self._error is not None
            or transport is None
            or transport.is_closing()
            or (self._drain is not None and not self._drain.done())
        ):
            return False
        transport.write(data)
        return True

    async def write(self, data: bytes) -> None:
        """Send ``data``, waiting (at most ``idle_timeout``) while too much is unsent."""
        transport = self._open_transport()
        transport.write(data)
        await self._wait_drained()

    async def _wait_drained(self) -> None:
        if self._drain is not None and not self._drain.done():
            async with asyncio.timeout(self.idle_timeout):
                await self._drain
            self._open_transport()  # closed while we waited: the bytes did not all go

    async def sendfile(self, file: BinaryIO, offset: int, count: int) -> int:
        """Send up to ``count`` bytes of ``file`` from ``offset`` with ``sendfile(2)``.

        Returns the bytes sent: fewer than ``count`` only at the end of the file.
        Where :attr:`can_sendfile` is False (TLS, uvloop), a read and a write instead.
        """
        if not self.can_sendfile:
            file.seek(offset)
            data = file.read(count)
            await self.write(data)
            return len(data)
        transport = self._open_transport()
        await self._wait_drained()
        async with asyncio.timeout(self.idle_timeout):
            return await self._loop.sendfile(transport, file, offset, count)

    def _open_transport(self) -> asyncio.Transport:
        if self._error is not None:
            raise self._error
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the data connection is closed")
        return self.transport

    # -- lifecycle ------------------------------------------------------------------

    @property
    def can_sendfile(self) -> bool:
        """True when :meth:`sendfile` can use ``sendfile(2)``: plain TCP on asyncio's loop.

        (uvloop has no ``loop.sendfile``; TLS has to encrypt every byte in Python.)
        """
        return (
            isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop)
            and self.transport is not None
            and self.transport.get_extra_info("ssl_object") is None
        )

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str, timeout: float | None
    ) -> None:
        """Upgrade to TLS (after the transfer command: the server starts it then)."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            transport = await loop.start_tls(
                self.transport, self, context, server_hostname=server_hostname
            )
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=HIGH_WATER)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The transport's extra info (``peername``, ``ssl_object``...)."""
        return default if self.transport is None else self.transport.get_extra_info(name, default)

    def close(self) -> None:
        """Close after sending what is buffered (EOF tells the server a STOR ended)."""
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping what is unsent."""
        if self.transport is not None:
            self.transport.abort()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""
        if self.transport is not None:
            await asyncio.shield(self._closed)
