"""The stream connection: one ``StreamHandler.handle()`` task over a reader and a writer.

The connection is a plain :class:`asyncio.Protocol` that feeds what it receives
straight into the reader's sans-IO :class:`~asyncnet.protocols.LineBuffer`: no
``StreamReaderProtocol`` in between, no copy into a second buffer.  A read returns
without suspending when the buffer can answer it, so a handler pays a task switch
only when it really waits for the peer; ``drain()`` below the high-water mark is a
few attribute checks, no future.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from ...errors import (
    FrameTooLarge,
    OperationTimeout,
    PeerProtocolError,
    WriteTimeout,
    format_peer,
)
from ...protocols import EOF, LineBuffer
from .base import ConnectionBase, log_handler_error, logger

if TYPE_CHECKING:
    from .._handlers import StreamHandler
    from .._stream import StreamServer

__all__ = ["ConnectionReader", "ConnectionWriter", "StreamConnection"]

_Bytes = bytes | bytearray | memoryview


class ConnectionReader:
    """What a :class:`~asyncnet.servers.StreamHandler` reads from (``self.reader``).

    It has the reading methods of :class:`asyncio.StreamReader` (``read``,
    ``readline``, ``readuntil``, ``readexactly``, ``at_eof``, ``exception``, ``async
    for line in reader``), over the connection's line buffer.  Unlike asyncio's,
    ``readline()`` and ``readuntil()`` raise :class:`~asyncnet.errors.LineTooLong`
    when no delimiter comes within ``max_line_length`` bytes, and again on every later
    read: the rest of an over-long line is never handed out as data.  Bytes already
    received are returned before a reset is reported.
    """

    __slots__ = (
        "_batch",
        "_change",
        "_delimiter",
        "_exception",
        "_last_byte",
        "_limit",
        "_line_wait",
        "_lines",
        "_loop",
        "_one_line",
        "_paused",
        "_ready",
        "_transport",
        "_turn",
        "_waiter",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
        *,
        limit: int,
        lines_per_batch: int,
    ) -> None:
        self._transport = transport
        self._loop = loop
        self._limit = limit
        self._batch = max(1, lines_per_batch)
        self._turn = 0  # lines returned from buffered input since the last wait
        lines = LineBuffer(limit, delimiter=b"\n", strip_cr=False)
        lines.set_delimiter(None)  # raw until a line is asked for: read() has no line limit
        self._lines = lines
        self._delimiter: bytes | None = None
        self._ready: bytes | None = None  # one whole line, as read: see _feed()
        # _feed()'s one-line test, for the one-byte delimiter readline() reads by
        # (-1, which no byte equals, otherwise).
        self._last_byte = -1
        self._one_line = limit + 1  # a line within the limit, with its delimiter
        self._waiter: asyncio.Future[None] | None = None
        self._line_wait = False  # the waiter is readline()'s: input is fed as lines
        self._change: asyncio.Future[None] | None = None
        self._exception: BaseException | None = None
        self._paused = False  # reading paused: more than 2 * limit buffered

    # -- fed by the connection -----------------------------------------------------

    def feed_data(self, data: _Bytes) -> None:
        """Add received bytes, as if the peer had sent them."""
        self._feed(bytes(data))

    def _feed(self, data: bytes) -> None:
        """Add received bytes: the connection calls this for every read."""
        if self._line_wait:
            # readline() waits for a line and nothing is buffered: a read that is exactly
            # one line within the limit (the request/reply case) is kept as it came and
            # handed out whole, the line buffer never touched.
            n = len(data)
            if (
                n <= self._one_line
                and self._ready is None
                and data[n - 1] == self._last_byte
                and data.count(self._last_byte) == 1
                and self._lines.idle
            ):
                self._ready = data
                self._wake()
                return
        elif self._delimiter is not None:
            # Nobody is reading a line: these bytes may be a body the handler reads raw
            # next, so no line limit applies to them until readline() asks for one.
            self._raw()
        lines = self._lines
        if self._ready is not None:
            self._unready()
        with contextlib.suppress(FrameTooLarge):  # the buffer keeps it: the next read raises it
            lines.feed(data)
        if lines.pending > 2 * self._limit and not self._paused:
            # Nobody reads it fast enough: leave the rest in the kernel (TCP flow control).
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def _unready(self) -> None:
        """Put the line kept whole back in front of the line buffer (more input came)."""
        ready = self._ready
        self._ready = None
        assert ready is not None
        self._lines.feed(ready)  # in line mode, within the limit: it cannot fail

    def feed_eof(self) -> None:
        """Record the end of input."""
        if self._ready is not None:
            self._unready()
        with contextlib.suppress(FrameTooLarge):  # reported by the next read instead
            self._lines.feed_eof()
        self._wake()

    def set_exception(self, exc: BaseException) -> None:
        """Make the next read that finds no data raise ``exc`` (the connection was lost)."""
        self._exception = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            self._line_wait = False
            if not waiter.done():
                waiter.set_result(None)

    # -- state ---------------------------------------------------------------------

    def exception(self) -> BaseException | None:
        """The error that ended the input, if one did."""
        return self._exception

    def at_eof(self) -> bool:
        """True once the input has ended and every byte of it was read."""
        lines = self._lines
        return lines.at_eof and not lines.pending and self._ready is None

    @property
    def waiting(self) -> bool:
        """True while a read waits for input it has not been given yet."""
        waiter = self._waiter
        return waiter is not None and not waiter.done()

    def changed(self) -> asyncio.Future[None]:
        """A future done the next time a read starts waiting."""
        change = self._change
        if change is None or change.done():
            self._change = change = self._loop.create_future()
        return change

    async def _wait(self, what: str, *, line: bool = False) -> None:
        """Wait for more input (or its end); raise the error that ended it, if any."""
        if self._exception is not None:
            raise self._exception
        if self._waiter is not None:
            raise RuntimeError(
                f"{what}() called while another coroutine is already waiting for incoming data"
            )
        self._turn = 0  # waiting: other connections run, so the batch starts afresh
        if self._paused:
            self._resume()
        self._waiter = waiter = self._loop.create_future()
        self._line_wait = line
        change = self._change
        if change is not None:
            self._change = None
            if not change.done():
                change.set_result(None)
        try:
            await waiter
        finally:
            self._waiter = None
            self._line_wait = False
        if self._exception is not None and not self._lines.pending and self._ready is None:
            raise self._exception

    def _resume(self) -> None:
        if self._lines.pending <= self._limit:
            self._paused = False
            transport = self._transport
            if not transport.is_closing():
                transport.resume_reading()

    def _use_delimiter(self, delimiter: bytes) -> None:
        if not delimiter:
            raise ValueError("the delimiter must not be empty")
        if self._ready is not None:
            self._unready()
        self._lines.set_delimiter(delimiter)
        self._delimiter = delimiter
        self._last_byte = delimiter[0] if len(delimiter) == 1 else -1

    def _raw(self) -> None:
        self._delimiter = None
        self._last_byte = -1
        with contextlib.suppress(FrameTooLarge):  # poisoned: the next read raises it
            self._lines.set_delimiter(None)

    # -- reads ---------------------------------------------------------------------

    async def readline(self, delimiter: bytes = b"\n") -> bytes:
        """One line with its delimiter; a final line without one as is; ``b""`` at EOF.

        Returns at once, without a task switch, when the line is already buffered
        (after ``lines_per_batch`` of those in a row it lets other connections run).
        """
        if delimiter != self._delimiter:
            self._use_delimiter(delimiter)
        lines = self._lines
        while True:
            ready = self._ready
            if ready is not None:
                # Kept whole by _feed() while this call waited: the first line since.
                self._ready = None
                self._turn = 1
                return ready
            if lines.idle:
                await self._wait("readline", line=True)
                continue
            line = lines.next_line()
            if line.__class__ is bytes:
                if self._paused:
                    self._resume()
                self._turn += 1
                if self._turn >= self._batch:
                    self._turn = 0
                    await asyncio.sleep(0)  # a batch from buffered input: the loop's turn
                if lines.last_line_unterminated:
                    return line
                return line + delimiter
            if line is EOF:
                return b""
            await self._wait("readline", line=True)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        """Data up to and including ``separator``.

        Raises :class:`asyncio.IncompleteReadError` if the input ends first.
        """
        line = await self.readline(separator)
        if not line.endswith(separator):
            raise asyncio.IncompleteReadError(line, None)
        return line

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (``n < 0``: everything until EOF); ``b""`` at EOF."""
        if n == 0:
            return b""
        if self._ready is not None:
            self._unready()
        lines = self._lines
        if n < 0:
            while not lines.at_eof:
                await self._wait("read")
            return self._take(None)
        if not lines.pending and not lines.at_eof:
            await self._wait("read")
        return self._take(n)

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; :class:`asyncio.IncompleteReadError` if the input ends first."""
        if n < 0:
            raise ValueError("readexactly size can not be less than zero")
        if self._ready is not None:
            self._unready()
        lines = self._lines
        while lines.pending < n:
            if lines.at_eof:
                raise asyncio.IncompleteReadError(self._take(None), n)
            await self._wait("readexactly")
        return self._take(n)

    def _take(self, n: int | None) -> bytes:
        data = self._lines.take_bytes(n)
        if self._paused:
            self._resume()
        return data

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    def __repr__(self) -> str:
        state = "eof" if self._lines.at_eof else "waiting" if self.waiting else "open"
        buffered = self._lines.pending + len(self._ready or b"")
        return f"<ConnectionReader {state} buffered={buffered}>"


class ConnectionWriter:
    """What a :class:`~asyncnet.servers.StreamHandler` writes to (``self.writer``).

    It has the methods of :class:`asyncio.StreamWriter`.  ``write()`` counts the bytes
    for the server's stats and the idle timeout; ``drain()`` returns at once while the
    transport's buffer is below its high-water mark, and raises
    :class:`~asyncnet.errors.WriteTimeout` when the server's write timeout expires
    while it waits.
    """

    __slots__ = ("_conn", "_transport")

    def __init__(self, transport: asyncio.Transport, connection: StreamConnection) -> None:
        self._transport = transport
        self._conn = connection

    @property
    def transport(self) -> asyncio.Transport:
        """The connection's transport."""
        return self._transport

    def write(self, data: _Bytes) -> None:
        """Write ``data`` (buffered by the transport; see :meth:`drain`)."""
        conn = self._conn
        conn._stats.bytes_out += len(data)
        conn._seen = conn._server.deadlines.tick
        self._transport.write(data)

    def writelines(self, data: Iterable[_Bytes]) -> None:
        """Write each of ``data``, as one write."""
        self.write(b"".join(data))

    def write_eof(self) -> None:
        """Half-close: no more output (the peer reads end of input)."""
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        """True if the transport can half-close (not over TLS)."""
        return self._transport.can_write_eof()

    def close(self) -> None:
        """Close once the buffered output is written."""
        self._transport.close()

    def is_closing(self) -> bool:
        """True once closing or closed."""
        return self._transport.is_closing()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""
        await self._conn._wait_lost()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The transport's ``get_extra_info()``."""
        return self._transport.get_extra_info(name, default)

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its high-water mark.

        Costs nothing when it already is.  Raises :class:`~asyncnet.errors.WriteTimeout`
        if the server's write timeout expires meanwhile, ``ConnectionResetError`` once
        the connection is lost.
        """
        conn = self._conn
        if (
            conn._write_blocked_since is None
            and not conn._lost
            and not conn._write_timed_out
            and not self._transport.is_closing()
        ):
            return
        await conn._drain()

    def __repr__(self) -> str:
        return f"<ConnectionWriter transport={self._transport!r}>"


class StreamConnection(ConnectionBase, asyncio.Protocol):
    """Runs one :class:`StreamHandler` task per connection over a
    :class:`ConnectionReader` and a :class:`ConnectionWriter`."""

    __slots__ = (
        "_drain_waiters",
        "_handler_task",
        "_lost",
        "_lost_exc",
        "_lost_waiter",
        "_reader",
        "_shutting_down",
        "_write_timed_out",
    )

    _handler: StreamHandler

    def __init__(self, server: StreamServer, handler: StreamHandler) -> None:
        self._init_connection(server, handler)
        handler._connection = self
        self._reader: ConnectionReader | None = None
        self._handler_task: asyncio.Task[None] | None = None
        self._lost = False
        self._lost_exc: BaseException | None = None
        self._lost_waiter: asyncio.Future[None] | None = None
        self._drain_waiters: list[asyncio.Future[None]] | None = None
        self._write_timed_out = False
        self._shutting_down = False

    def _start(self, transport: asyncio.Transport) -> None:
        handler = self._handler
        cls = type(handler)
        loop = self._server.loop
        self._reader = reader = ConnectionReader(
            transport, loop, limit=cls.max_line_length, lines_per_batch=cls.lines_per_batch
        )
        writer = ConnectionWriter(transport, self)
        handler.reader = reader
        handler.writer = writer
        self._handler_task = task = loop.create_task(self._run(writer))
        task.add_done_callback(self._task_done)

    def _task_done(self, _task: asyncio.Task[None]) -> None:
        self._maybe_unregister()

    # -- asyncio.Protocol ----------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._stats.bytes_in += len(data)
        self._seen = self._server.deadlines.tick
        reader = self._reader
        if reader is None or self._shutting_down:
            return  # the reader already saw EOF; more input is not for this session
        reader._feed(data if data.__class__ is bytes else bytes(data))

    def eof_received(self) -> bool:
        if self._reader is not None:
            self._reader.feed_eof()
        transport = self._transport
        # Half-close: the handler may still answer.  Not over TLS, which cannot.
        return transport is not None and transport.get_extra_info("sslcontext") is None

    def pause_writing(self) -> None:
        self._stamp_write_blocked(True)

    def resume_writing(self) -> None:
        self._stamp_write_blocked(False)
        self._wake_drains()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._lost_exc = exc
        reader = self._reader
        if reader is not None:
            if exc is None:
                reader.feed_eof()
            else:
                reader.set_exception(exc)
        self._wake_drains()
        waiter = self._lost_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._maybe_unregister()

    # -- the writer's slow path ----------------------------------------------------

    def _wake_drains(self) -> None:
        waiters = self._drain_waiters
        if waiters:
            self._drain_waiters = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _check_writable(self) -> None:
        if self._write_timed_out:
            raise self._write_timeout_error()
        if self._lost:
            exc = self._lost_exc
            if exc is not None:
                raise exc
            raise ConnectionResetError("Connection lost")

    async def _drain(self) -> None:
        transport = self._transport
        if transport is not None and transport.is_closing() and not self._lost:
            # As asyncio's drain(): one turn, so that a closing transport's
            # connection_lost() runs and is reported here.
            await asyncio.sleep(0)
        self._check_writable()
        while self._write_blocked_since is not None:
            waiter = self._server.loop.create_future()
            if self._drain_waiters is None:
                self._drain_waiters = []
            self._drain_waiters.append(waiter)
            await waiter
            # The write timeout aborts the transport, which wakes this drain().
            self._check_writable()

    async def _wait_lost(self) -> None:
        if self._lost:
            return
        if self._lost_waiter is None:
            self._lost_waiter = self._server.loop.create_future()
        await asyncio.shield(self._lost_waiter)

    # -- state for the test kit and the server -------------------------------------

    def _gone(self) -> bool:
        task = self._handler_task
        return self._lost and (task is None or task.done())

    @property
    def quiescent(self) -> bool:
        """True when the handler task is done, or waits in a read call for input it
        has not been given yet."""
        task = self._handler_task
        reader = self._reader
        return task is None or task.done() or (reader is not None and reader.waiting)

    async def wait_quiescent(self) -> None:
        """Return once :attr:`quiescent` is true: wait for the task to end or for its
        next wait for input (whichever comes first), and check again."""
        while not self.quiescent:
            task = self._handler_task
            reader = self._reader
            assert task is not None
            assert reader is not None
            await asyncio.wait([task, reader.changed()], return_when=asyncio.FIRST_COMPLETED)

    def _timed_out(self, which: str, seconds: float, *, abort: bool = False) -> None:
        if which == "write":
            self._write_timed_out = True  # drain() raises WriteTimeout, not a reset
        super()._timed_out(which, seconds, abort=abort)

    def _write_timeout_error(self) -> WriteTimeout:
        timeout = self._server.write_timeout
        assert timeout is not None
        return WriteTimeout(self._handler.peer, "write", timeout)

    async def _run(self, writer: ConnectionWriter) -> None:
        handler = self._handler
        try:
            handler.setup()
            await handler.handle()
        except WriteTimeout:
            pass  # already counted and logged by the deadline
        except OperationTimeout as exc:  # a frame timeout and the like: the peer was slow
            self._stats.connections_timed_out += 1
            self._log_closing(logging.INFO, exc)
        except PeerProtocolError as exc:
            self._stats.protocol_errors += 1
            self._log_closing(logging.WARNING, exc)
        except (ConnectionError, BrokenPipeError) as exc:
            logger.debug("%s went away: %r", format_peer(handler.peer), exc)
        except asyncio.CancelledError:
            if not self._shutting_down and not self._lost:
                raise
        except Exception as exc:
            self._stats.handler_errors += 1
            log_handler_error(handler, handler.peer, exc)
        finally:
            self._conn_closed = True
            writer.close()

    @property
    def shutting_down(self) -> bool:
        """True once the server has asked this connection to stop."""
        return self._shutting_down

    def shutdown(self) -> None:
        """Graceful stop: the handler's reader sees end of input."""
        if self._shutting_down or self._handler_task is None:
            return
        self._shutting_down = True
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()
        if self._reader is not None:
            self._reader.feed_eof()

    def abort(self) -> None:
        """Hard stop after the grace period."""
        self._shutting_down = True
        if self._handler_task is not None:
            self._handler_task.cancel()
        if self._transport is not None:
            self._transport.abort()
