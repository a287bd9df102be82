"""The stream connection: one ``StreamHandler.handle()`` task over asyncio streams."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, SupportsIndex

from ...errors import OperationTimeout, PeerProtocolError, WriteTimeout, format_peer
from .base import ConnectionBase, log_handler_error, logger

if TYPE_CHECKING:
    from .._handlers import StreamHandler
    from .._stream import StreamServer

__all__ = ["StreamConnection"]


class _ServerStreamWriter(asyncio.StreamWriter):
    """A StreamWriter that counts bytes out and turns a write timeout into
    :class:`~asyncnet.errors.WriteTimeout` from ``drain()``."""

    _connection: StreamConnection

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._connection._count_out(len(data))
        super().write(data)

    def writelines(self, data: Any) -> None:
        chunks = list(data)
        self._connection._count_out(sum(len(c) for c in chunks))
        super().writelines(chunks)

    async def drain(self) -> None:
        # The write timeout itself is the connection's deadline (one timer for both
        # connection kinds); it aborts the transport, which wakes this drain().
        conn = self._connection
        try:
            await super().drain()
        except ConnectionError:
            if conn._write_timed_out:
                raise conn._write_timeout_error() from None
            raise
        if conn._write_timed_out:
            raise conn._write_timeout_error()


class _ServerStreamReader(asyncio.StreamReader):
    """A StreamReader that knows when its handler waits for input it has not seen yet
    (the connection's ``quiescent``), from its public methods alone.

    A handler task suspended inside a read call waits for input: a read only ever
    suspends for that.  Input fed while it waits wakes it; it has *seen* that input
    once it returns from the read, or enters another.  ``readline()``,
    ``readuntil()`` and ``readexactly()`` may find too little and wait again without
    returning, so input fed during one of those counts as seen once the handler's
    wakeup (scheduled by the feed, so before our own callback) has run.
    """

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self._reads = 0  # read calls in progress
        self._rereading = 0  # of those, calls that may wait again once woken
        self._fed = 0  # inputs fed: data, the end of input, an error
        self._seen = 0  # of those, the ones the handler has had its turn to look at
        self._change: asyncio.Future[None] | None = None  # a wait for the next change

    @property
    def waiting(self) -> bool:
        """True while the handler waits in a read call, having seen all input so far."""
        return self._reads > 0 and self._seen == self._fed

    def changed(self) -> asyncio.Future[None]:
        """A future done at the next read call, or once fed input has been looked at."""
        if self._change is None or self._change.done():
            self._change = asyncio.get_running_loop().create_future()
        return self._change

    def _notify(self) -> None:
        change = self._change
        if change is not None:
            self._change = None
            if not change.done():
                change.set_result(None)

    # -- input ---------------------------------------------------------------------

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        super().feed_data(data)
        self._input()

    def feed_eof(self) -> None:
        super().feed_eof()
        self._input()

    def set_exception(self, exc: Exception) -> None:
        super().set_exception(exc)
        self._input()

    def _input(self) -> None:
        self._fed += 1
        if self._rereading:
            asyncio.get_running_loop().call_soon(self._looked_at, self._fed)

    def _looked_at(self, fed: int) -> None:
        if fed > self._seen:
            self._seen = fed
        self._notify()

    # -- reads -----------------------------------------------------------------------

    def _enter(self, rereads: bool) -> None:
        self._reads += 1
        self._rereading += rereads
        self._seen = self._fed  # running now: it sees everything fed so far
        if self._change is not None:
            self._notify()

    def _leave(self, rereads: bool) -> None:
        self._reads -= 1
        self._rereading -= rereads
        self._seen = self._fed

    async def read(self, n: int = -1) -> bytes:
        # _enter() and _leave() inlined: the read of every stream handler's every chunk.
        self._reads += 1
        self._seen = self._fed
        if self._change is not None:
            self._notify()
        try:
            return await super().read(n)
        finally:
            self._reads -= 1
            self._seen = self._fed

    async def readline(self) -> bytes:
        self._enter(True)
        try:
            return await super().readline()
        finally:
            self._leave(True)

    async def readuntil(self, separator: Any = b"\n") -> bytes:
        self._enter(True)
        try:
            return await super().readuntil(separator)
        finally:
            self._leave(True)

    async def readexactly(self, n: int) -> bytes:
        self._enter(True)
        try:
            return await super().readexactly(n)
        finally:
            self._leave(True)


class StreamConnection(ConnectionBase, asyncio.StreamReaderProtocol):
    """Runs one :class:`StreamHandler` task per connection over asyncio streams."""

    _handler: StreamHandler

    def __init__(self, server: StreamServer, handler: StreamHandler) -> None:
        self._init_connection(server, handler)
        handler._connection = self
        self._reader = _ServerStreamReader(type(handler).max_line_length, server.loop)
        asyncio.StreamReaderProtocol.__init__(self, self._reader)
        self._handler_task: asyncio.Task[None] | None = None
        self._lost = False
        self._write_timed_out = False
        self._shutting_down = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        asyncio.StreamReaderProtocol.connection_made(self, transport)
        ConnectionBase.connection_made(self, transport)

    def _start(self, transport: asyncio.Transport) -> None:
        writer = _ServerStreamWriter(transport, self, self._reader, self._server.loop)
        writer._connection = self
        handler = self._handler
        handler.reader = self._reader
        handler.writer = writer
        self._handler_task = task = self._server.loop.create_task(self._run(writer))
        task.add_done_callback(lambda _task: self._maybe_unregister())

    def pause_writing(self) -> None:
        super().pause_writing()
        self._stamp_write_blocked(True)

    def resume_writing(self) -> None:
        self._stamp_write_blocked(False)
        super().resume_writing()

    def data_received(self, data: bytes) -> None:
        self._stats.bytes_in += len(data)
        self._seen = self._server.deadlines.tick
        if self._shutting_down:
            return  # the reader already saw EOF; feeding it more would be an error
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        asyncio.StreamReaderProtocol.connection_lost(self, exc)
        self._lost = True
        self._maybe_unregister()

    def _gone(self) -> bool:
        task = self._handler_task
        return self._lost and (task is None or task.done())

    @property
    def quiescent(self) -> bool:
        """True when the handler task is done, or waits in a read call for input it
        has not been given yet."""
        task = self._handler_task
        return task is None or task.done() or self._reader.waiting

    async def wait_quiescent(self) -> None:
        """Return once :attr:`quiescent` is true: wait for the task to end, or for its
        next read call or look at fed input (whichever comes first), and check again."""
        while not self.quiescent:
            task = self._handler_task
            assert task is not None
            await asyncio.wait([task, self._reader.changed()], return_when=asyncio.FIRST_COMPLETED)

    def _count_out(self, n: int) -> None:
        self._stats.bytes_out += n
        self._seen = self._server.deadlines.tick

    def _timed_out(self, which: str, seconds: float, *, abort: bool = False) -> None:
        if which == "write":
            self._write_timed_out = True  # drain() raises WriteTimeout, not a reset
        super()._timed_out(which, seconds, abort=abort)

    def _write_timeout_error(self) -> WriteTimeout:
        timeout = self._server.write_timeout
        assert timeout is not None
        return WriteTimeout(self._handler.peer, "write", timeout)

    async def _run(self, writer: asyncio.StreamWriter) -> None:
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
        self._reader.feed_eof()

    def abort(self) -> None:
        """Hard stop after the grace period."""
        self._shutting_down = True
        if self._handler_task is not None:
            self._handler_task.cancel()
        if self._transport is not None:
            self._transport.abort()
