"""Per-connection protocols behind the handler classes.

``LineConnection`` is the fast path: an :class:`asyncio.Protocol` that splits lines
in ``data_received``, calls ``handle_line`` directly, drives coroutines eagerly and
writes all the replies produced by one read in a single ``write()``.  While a
coroutine is suspended, while the peer is not reading (``pause_writing``) or once
the session is closing, the connection is *blocked*: it pauses reading and keeps
unprocessed bytes, so replies stay in order and memory stays bounded.

``StreamConnection`` feeds an ``asyncio.StreamReader`` and runs
``StreamHandler.handle()`` in one task per connection.

Both register with their server (connection limit, counters, graceful shutdown)
and share the deadline logic of :class:`_Deadlines` (idle, line and write timeouts,
one timer per connection, re-armed lazily rather than on every read).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from typing import TYPE_CHECKING, Any, cast

from .._eager import PENDING, continue_in_task, step
from ..errors import LineTooLong, OperationTimeout, PeerProtocolError, WriteTimeout, format_peer

if TYPE_CHECKING:
    from .handlers import BaseHandler, LineHandler, StreamHandler
    from .stream import StreamServer

logger = logging.getLogger("asyncnet.server")

__all__ = ["LineConnection", "StreamConnection"]

_LINGER_SECONDS = 2.0
"""After a protocol error, how long we keep draining the peer before aborting."""


class DeadlineWheel:
    """Shared timers for a server's connections: one loop timer per time slot.

    A TimerHandle per idle connection costs about 0.6 KiB on uvloop; most idle
    connections of a server have deadlines close together.  Deadlines are rounded
    up to ``resolution`` seconds, and every connection due in that slot is checked
    by one loop timer.  A timeout therefore fires up to ``resolution`` late.
    """

    __slots__ = ("_handles", "_loop", "_slots", "resolution")

    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float) -> None:
        self._loop = loop
        self.resolution = resolution
        self._slots: dict[float, set[_Deadlines]] = {}
        self._handles: dict[float, asyncio.TimerHandle] = {}

    @classmethod
    def for_timeouts(
        cls, loop: asyncio.AbstractEventLoop, *timeouts: float | None
    ) -> DeadlineWheel:
        """A wheel whose slots are 1/32 of the shortest timeout (1 ms .. 1 s)."""
        shortest = min((t for t in timeouts if t is not None), default=1.0)
        return cls(loop, min(1.0, max(0.001, shortest / 32)))

    def slot(self, when: float) -> float:
        """The slot (a loop time) a deadline ``when`` falls in."""
        return math.ceil(when / self.resolution) * self.resolution

    def add(self, conn: _Deadlines, when: float) -> float:
        key = self.slot(when)
        members = self._slots.get(key)
        if members is None:
            members = self._slots[key] = set()
            self._handles[key] = self._loop.call_at(key, self._fire, key)
        members.add(conn)
        return key

    def remove(self, conn: _Deadlines, key: float) -> None:
        members = self._slots.get(key)
        if members is None:
            return
        members.discard(conn)
        if not members:
            del self._slots[key]
            self._handles.pop(key).cancel()

    def _fire(self, key: float) -> None:
        self._handles.pop(key, None)
        for conn in self._slots.pop(key, ()):
            try:
                conn._on_timer()
            except Exception as exc:  # one connection's bug must not skip the others
                self._loop.call_exception_handler(
                    {"message": "connection deadline check failed", "exception": exc}
                )


class _Deadlines:
    """Idle / partial-line / write-blocked timeouts with one lazily re-armed deadline
    in the server's :class:`DeadlineWheel`."""

    # Slots (LineConnection has no __dict__: see there); StreamConnection, whose
    # asyncio base has a __dict__, is unaffected.
    __slots__ = ("_last_activity", "_partial_since", "_timer", "_write_blocked_since")

    _server: StreamServer
    _loop: asyncio.AbstractEventLoop
    _transport: asyncio.Transport | None
    _handler: BaseHandler
    _timer: float | None  # our slot in the server's deadline wheel
    _last_activity: float
    _partial_since: float | None
    _write_blocked_since: float | None
    _conn_closed: bool

    def _init_deadlines(self) -> None:
        self._timer = None
        self._last_activity = self._loop.time()
        self._partial_since = None
        self._write_blocked_since = None

    def _busy(self) -> bool:
        """True while the handler is working, which does not count as idle."""
        return False

    def _arm_timer(self) -> None:
        server = self._server
        if (
            server.idle_timeout is None
            and server.line_timeout is None
            and (server.write_timeout is None)
        ):
            return
        self._schedule(self._next_deadline())

    def _schedule(self, when: float) -> None:
        wheel = self._server.deadline_wheel
        if self._timer is not None:
            wheel.remove(self, self._timer)
        self._timer = None if when == math.inf else wheel.add(self, when)

    def _next_deadline(self) -> float:
        server = self._server
        when = math.inf
        if server.write_timeout is not None and self._write_blocked_since is not None:
            when = min(when, self._write_blocked_since + server.write_timeout)
        if server.idle_timeout is not None:
            base = self._loop.time() if self._busy() else self._last_activity
            when = min(when, base + server.idle_timeout)
        if server.line_timeout is not None and self._partial_since is not None:
            when = min(when, self._partial_since + server.line_timeout)
        return when

    def _on_timer(self) -> None:
        self._timer = None
        if self._conn_closed or self._transport is None:
            return
        now = self._loop.time()
        server = self._server
        if (
            server.write_timeout is not None
            and self._write_blocked_since is not None
            and now >= self._write_blocked_since + server.write_timeout
        ):
            self._timed_out("write", server.write_timeout, abort=True)
            return
        if (
            server.idle_timeout is not None
            and not self._busy()
            and now >= self._last_activity + server.idle_timeout
        ):
            self._timed_out("idle", server.idle_timeout)
            return
        if (
            server.line_timeout is not None
            and self._partial_since is not None
            and now >= self._partial_since + server.line_timeout
        ):
            self._timed_out("line", server.line_timeout)
            return
        self._schedule(self._next_deadline())

    def _timed_out(self, which: str, seconds: float, *, abort: bool = False) -> None:
        self._server.stats.connections_timed_out += 1
        logger.info(
            "closing %s: %s timeout (%g s)", format_peer(self._handler.peer), which, seconds
        )
        self._close_for_timeout(which, abort)

    def _close_for_timeout(self, which: str, abort: bool) -> None:
        transport = self._transport
        assert transport is not None
        if abort or transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._server.deadline_wheel.remove(self, self._timer)
            self._timer = None


def _log_handler_error(handler: Any, peer: Any, exc: BaseException) -> None:
    logger.error(
        "%s failed for %s: %r",
        type(handler).__name__,
        format_peer(peer),
        exc,
        exc_info=(type(exc), exc, exc.__traceback__),
    )


class LineConnection(_Deadlines, asyncio.Protocol):
    """Line splitting and in-order dispatch for a :class:`LineHandler`."""

    # Slots, not a __dict__: with this many attributes CPython 3.11 gives every
    # instance a full dict (~1.5 KiB), the largest part of an idle connection.
    __slots__ = (
        "_blocked",
        "_buf",
        "_close_requested",
        "_conn_closed",
        "_delim",
        "_dlen",
        "_encoding",
        "_eof",
        "_errors",
        "_handler",
        "_linger",
        "_loop",
        "_max",
        "_max_raw",
        "_out",
        "_reading_paused",
        "_registered",
        "_reply_end",
        "_run_in_task",
        "_scanned",
        "_server",
        "_stats",
        "_strip_cr",
        "_task",
        "_timed",
        "_transport",
        "_write_paused",
    )

    _handler: LineHandler

    def __init__(self, server: StreamServer, handler: LineHandler) -> None:
        self._server = server
        self._loop = server.loop
        self._stats = server.stats
        self._handler = handler
        cls = type(handler)
        self._delim = cls.delimiter
        if not self._delim:
            raise ValueError(f"{cls.__name__}.delimiter must not be empty")
        self._dlen = len(self._delim)
        self._max = cls.max_line_length
        self._encoding = cls.encoding
        self._errors = cls.errors
        self._strip_cr = cls.strip_cr and self._delim == b"\n"
        # a line of exactly max_line_length may arrive with its \r: allow that byte
        self._max_raw = self._max + 1 if self._strip_cr else self._max
        self._reply_end = cls.reply_delimiter if cls.reply_delimiter is not None else self._delim
        self._run_in_task = cls.run_in_task
        self._buf = bytearray()  # bytes not yet handled: a partial line, or lines held back
        self._scanned = 0  # no delimiter starts before this offset of _buf
        self._out: list[bytes] = []  # replies produced by this read, written at once
        self._task: asyncio.Task[Any] | None = None
        self._transport: asyncio.Transport | None = None
        self._blocked = False
        self._reading_paused = False
        self._write_paused = False
        self._close_requested = False
        self._eof = False
        self._conn_closed = False
        self._registered = False
        self._linger: asyncio.TimerHandle | None = None
        self._timed = server.idle_timeout is not None or server.line_timeout is not None
        handler._connection = self
        self._init_deadlines()

    # -- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        handler = self._handler
        handler.transport = transport
        handler.server = self._server
        handler.peer = transport.get_extra_info("peername")
        if not self._server._register(self, transport):
            self._conn_closed = True
            return
        self._registered = True
        try:
            handler.setup()
            greeting = handler.greeting()
            if greeting is not None:
                self._out.append(greeting.encode(self._encoding) + self._reply_end)
        except Exception as exc:
            self._handler_failed(exc)
        self._settle()
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        self._stats.bytes_in += len(data)
        end = len(data) - self._dlen
        if (
            self._blocked
            or self._close_requested
            or self._buf
            or end < 0
            or end > self._max_raw
            or data.find(self._delim) != end
        ):
            self._data_received(data)
            return
        # The request/reply case: exactly one complete line and nothing held back.
        # What _feed() + _dispatch() + _settle() would do, without their loop,
        # buffer bookkeeping and calls.
        line = data[:end]
        if self._strip_cr and line.endswith(b"\r"):
            line = line[:-1]
        elif end > self._max:
            self._feed(data)  # the byte of slack was not a \r: let _dispatch() refuse it
            return
        try:
            text = line.decode(self._encoding, self._errors)
        except UnicodeDecodeError:
            self._feed(data)  # the protocol error, exactly as the general path reports it
            return
        try:
            result = self._handler.handle_line(text)
            if result is not None and result.__class__ is not str:
                result = self._await(result)
            if result is not None and result is not PENDING:
                reply = result.encode(self._encoding, self._errors) + self._reply_end
                if self._out or self._linger is not None or self._conn_closed:
                    self._out.append(reply)
                else:
                    self._stats.bytes_out += len(reply)
                    self._transport.write(reply)  # type: ignore[union-attr]
        except Exception as exc:
            self._handler_failed(exc)
        if self._partial_since is not None and not self._blocked:
            self._partial_since = None
        self._scanned = 0
        if self._timed:  # one clock read covers this read and its reply
            self._last_activity = self._loop.time()
        if self._out or self._close_requested:
            self._settle()

    def _data_received(self, data: bytes) -> None:
        if self._timed:
            self._last_activity = self._loop.time()
        if self._close_requested:
            return  # after a protocol error nothing more is ever handled
        if self._blocked:
            self._buf += data
            self._pause_reading()
            return
        self._feed(data)

    def eof_received(self) -> bool:
        self._eof = True
        if self._linger is not None:
            return False  # the misbehaving peer has finished: close now
        if not self._blocked:
            self._feed(b"")
        assert self._transport is not None
        return self._transport.get_extra_info("sslcontext") is None

    def pause_writing(self) -> None:
        self._write_paused = True
        self._write_blocked_since = self._loop.time()
        self._update_blocked()
        self._arm_timer()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._write_blocked_since = None
        self._resume()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn_closed and not self._registered:
            return
        self._conn_closed = True
        self._blocked = True
        self._cancel_timer()
        if self._linger is not None:
            self._linger.cancel()
        if self._task is not None:
            self._task.cancel()
        self._buf.clear()
        self._out.clear()
        self._maybe_unregister()

    # -- line processing --------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        buf = self._buf
        if buf:
            buf += data
            view: bytes | bytearray = buf
            start = 0
            scan = self._scanned
        else:
            view = data
            start = scan = 0
        delim, dlen, limit = self._delim, self._dlen, self._max_raw
        find = view.find
        while not self._blocked:
            i = find(delim, scan if scan > start else start)
            if i < 0:
                break
            if i - start > limit:
                self._peer_error(LineTooLong(self._max, i - start, self._handler.peer))
                return
            line = view[start:i]
            start = i + dlen
            self._dispatch(line)
        if view is buf:
            del buf[:start]
        elif start < len(view):
            buf += view[start:]
        if not self._blocked:
            if len(buf) > limit + dlen - 1:
                self._peer_error(LineTooLong(self._max, len(buf), self._handler.peer))
                return
            self._scanned = max(0, len(buf) - dlen + 1)
            if self._eof:
                self._end_of_input()
            elif self._server.line_timeout is not None:
                self._track_partial_line()
        else:
            self._scanned = 0
        self._settle()

    def _track_partial_line(self) -> None:
        if not self._buf:
            self._partial_since = None
        elif self._partial_since is None:
            self._partial_since = now = self._loop.time()
            # Lazily, like the idle deadline: a timer due no later than the new line
            # deadline re-checks everything when it fires, so only an earlier
            # deadline needs a new timer (a client sending each line in two reads
            # would otherwise cost a timer per line).
            timer = self._timer
            server = self._server
            assert server.line_timeout is not None
            if timer is None or timer > server.deadline_wheel.slot(now + server.line_timeout):
                self._arm_timer()

    def _end_of_input(self) -> None:
        if self._buf:
            line = bytes(self._buf)
            self._buf.clear()
            self._dispatch(line)
        if self._task is None:
            self._close_requested = True
            self._blocked = True

    def _dispatch(self, line: bytes | bytearray) -> None:
        if self._strip_cr:
            if line.endswith(b"\r"):
                line = line[:-1]
            elif len(line) > self._max:  # the one byte of slack was not a \r
                self._peer_error(LineTooLong(self._max, len(line), self._handler.peer))
                return
        try:
            text = line.decode(self._encoding, self._errors)
        except UnicodeDecodeError as exc:
            self._peer_error(PeerProtocolError(f"invalid {self._encoding} in line: {exc.reason}"))
            return
        try:
            result = self._handler.handle_line(text)
            if result is not None and result.__class__ is not str:
                result = self._await(result)
                if result is PENDING:
                    return
            if result is not None:
                self._out.append(result.encode(self._encoding, self._errors) + self._reply_end)
        except Exception as exc:
            self._handler_failed(exc)

    def _await(self, result: Any) -> Any:
        if inspect.iscoroutine(result) and not self._run_in_task:
            value, yielded = step(result)
            if value is not PENDING:
                return value
            task = continue_in_task(result, yielded)
        elif inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
        else:
            raise TypeError(
                f"handle_line() must return str, None or an awaitable, not {type(result).__name__}"
            )
        self._task = task
        self._update_blocked()
        task.add_done_callback(self._task_done)
        return PENDING

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._task = None
        if self._conn_closed:
            if not task.cancelled():
                task.exception()  # retrieved: the peer is gone, nobody to tell
            self._maybe_unregister()
            return
        if task.cancelled():
            self._handler_failed(asyncio.CancelledError("handle_line() was cancelled"))
        elif (exc := task.exception()) is not None:
            self._handler_failed(exc)
        else:
            result = task.result()
            if result is not None:
                try:
                    self._out.append(result.encode(self._encoding, self._errors) + self._reply_end)
                except Exception as encode_exc:
                    self._handler_failed(encode_exc)
        self._settle()
        self._resume()

    # -- flow control -----------------------------------------------------------

    def _update_blocked(self) -> None:
        self._blocked = (
            self._task is not None
            or self._write_paused
            or self._close_requested
            or self._conn_closed
        )
        if self._blocked:
            self._pause_reading()

    def _pause_reading(self) -> None:
        if self._linger is not None:
            return  # lingering after an error: keep draining the peer
        if not self._reading_paused and self._transport is not None and not self._conn_closed:
            self._reading_paused = True
            self._transport.pause_reading()

    def _resume(self) -> None:
        self._update_blocked()
        if self._blocked:
            return
        if self._reading_paused:
            self._reading_paused = False
            assert self._transport is not None
            if not self._transport.is_closing():
                self._transport.resume_reading()
        if self._buf or self._eof:
            self._feed(b"")

    def _settle(self) -> None:
        """Write what the handler produced; close if the session is over."""
        if self._linger is not None:
            return
        out = self._out
        transport = self._transport
        if out and transport is not None and not self._conn_closed:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            self._stats.bytes_out += len(data)
            if self._timed:
                self._last_activity = self._loop.time()
            transport.write(data)
        if self._close_requested and self._task is None and not self._conn_closed:
            assert transport is not None
            transport.close()

    def _busy(self) -> bool:
        return self._task is not None

    # -- called by the handler and the server -----------------------------------

    def send_line(self, line: str) -> None:
        if self._conn_closed:
            return
        self._out.append(line.encode(self._encoding, self._errors) + self._reply_end)
        if self._close_requested and self._task is None:
            # let the line out before the close that _settle() would do
            self._close_requested = False
            self._settle()
            self._close_requested = True
        else:
            self._settle()

    def request_close(self) -> None:
        """End the session after the reply in progress, if any."""
        if self._conn_closed:
            return
        self._close_requested = True
        self._update_blocked()

    def shutdown(self) -> None:
        """Graceful stop: close now if idle, else after the line being handled."""
        if self._conn_closed:
            return
        if self._linger is not None:
            self.abort()  # it was only waiting for a misbehaving peer
            return
        self.request_close()
        self._settle()

    def abort(self) -> None:
        """Hard stop after the grace period."""
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.abort()

    def abort_with_reason(self, reason: str) -> None:
        """Drop the connection at the handler's request (a slow consumer...)."""
        if self._conn_closed:
            return
        logger.warning("dropping %s: %s", format_peer(self._handler.peer), reason)
        self._out.clear()
        self.request_close()
        self.abort()

    @property
    def write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() if self._transport else 0

    # -- failures ---------------------------------------------------------------

    def _peer_error(self, exc: PeerProtocolError) -> None:
        self._stats.protocol_errors += 1
        logger.warning("closing %s: %s", format_peer(self._handler.peer), exc)
        self._buf.clear()
        if isinstance(exc, LineTooLong):
            try:
                self._handler.line_too_long(exc)
            except Exception as hook_exc:
                _log_handler_error(self._handler, self._handler.peer, hook_exc)
        reply = type(self._handler).error_reply
        if reply is not None:
            text = reply.format(reason=str(exc))
            self._out.append(text.encode(self._encoding, "replace") + self._reply_end)
        self.request_close()
        self._settle_with_linger()

    def _settle_with_linger(self) -> None:
        """Close after an error reply so that the reply survives unread input.

        Closing a socket whose receive buffer still holds data makes the kernel
        send RST, and the peer may then lose the error reply we just wrote.  So
        shut down our side, keep reading (and discarding) until the peer closes,
        and abort after a short linger if it never does.
        """
        transport = self._transport
        if transport is None or self._conn_closed or not transport.can_write_eof():
            self._settle()
            return
        self._close_requested = False  # _settle() must not close yet
        self._settle()
        self._close_requested = True
        transport.write_eof()
        self._linger = self._loop.call_later(_LINGER_SECONDS, transport.abort)
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    def _handler_failed(self, exc: BaseException) -> None:
        self._stats.handler_errors += 1
        _log_handler_error(self._handler, self._handler.peer, exc)
        self.request_close()

    def _maybe_unregister(self) -> None:
        if self._registered and self._conn_closed and self._task is None:
            self._registered = False
            try:
                self._handler.finish()
            except Exception as exc:
                _log_handler_error(self._handler, self._handler.peer, exc)
            self._server._unregister(self)


class _ServerStreamWriter(asyncio.StreamWriter):
    """A StreamWriter that counts bytes out and bounds ``drain()`` by the write timeout."""

    _connection: StreamConnection

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._connection._count_out(len(data))
        super().write(data)

    def writelines(self, data: Any) -> None:
        chunks = list(data)
        self._connection._count_out(sum(len(c) for c in chunks))
        super().writelines(chunks)

    async def drain(self) -> None:
        timeout = self._connection._server.write_timeout
        if timeout is None or not self._connection._write_paused:
            # Not paused: drain() returns (or raises) without waiting, so a timeout
            # would only set and cancel a timer per write.
            await super().drain()
            return
        try:
            async with asyncio.timeout(timeout):
                await super().drain()
        except TimeoutError:
            peer = self._connection._handler.peer
            self._connection._server.stats.connections_timed_out += 1
            logger.info("closing %s: write timeout (%g s)", format_peer(peer), timeout)
            self.transport.abort()
            raise WriteTimeout(peer, "write", timeout) from None


class StreamConnection(_Deadlines, asyncio.StreamReaderProtocol):
    """Runs one :class:`StreamHandler` task per connection over asyncio streams."""

    _handler: StreamHandler

    def __init__(self, server: StreamServer, handler: StreamHandler) -> None:
        self._server = server
        self._loop = server.loop
        self._handler = handler
        self._reader = asyncio.StreamReader(limit=type(handler).max_line_length)
        super().__init__(self._reader)
        self._stream_transport: asyncio.Transport | None = None
        self._handler_task: asyncio.Task[None] | None = None
        self._conn_closed = False
        self._lost = False
        self._write_paused = False  # between pause_writing() and resume_writing()
        self._registered = False
        self._shutting_down = False
        handler._connection = self
        self._init_deadlines()

    @property
    def _transport(self) -> asyncio.Transport | None:  # used by _Deadlines
        return self._stream_transport

    @_transport.setter
    def _transport(self, value: Any) -> None:
        # StreamReaderProtocol keeps its own _transport; mirror it for _Deadlines.
        self._stream_transport = value

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        super().connection_made(transport)
        handler = self._handler
        handler.transport = transport
        handler.server = self._server
        handler.peer = transport.get_extra_info("peername")
        if not self._server._register(self, transport):
            self._conn_closed = True
            return
        self._registered = True
        writer = _ServerStreamWriter(transport, self, self._reader, self._loop)
        writer._connection = self
        handler.reader = self._reader
        handler.writer = writer
        self._handler_task = self._loop.create_task(self._run(writer))
        self._arm_timer()

    def pause_writing(self) -> None:
        self._write_paused = True
        super().pause_writing()

    def resume_writing(self) -> None:
        self._write_paused = False
        super().resume_writing()

    def data_received(self, data: bytes) -> None:
        self._server.stats.bytes_in += len(data)
        self._last_activity = self._loop.time()
        if self._shutting_down:
            return  # the reader already saw EOF; feeding it more would be an error
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._lost = True
        self._cancel_timer()
        self._maybe_unregister()

    def _count_out(self, n: int) -> None:
        self._server.stats.bytes_out += n
        self._last_activity = self._loop.time()

    async def _run(self, writer: asyncio.StreamWriter) -> None:
        handler = self._handler
        try:
            handler.setup()
            await handler.handle()
        except WriteTimeout:
            pass  # already counted and logged by the writer
        except OperationTimeout as exc:  # a frame timeout and the like: the peer was slow
            self._server.stats.connections_timed_out += 1
            logger.info("closing %s: %s", format_peer(handler.peer), exc)
        except PeerProtocolError as exc:
            self._server.stats.protocol_errors += 1
            logger.warning("closing %s: %s", format_peer(handler.peer), exc)
        except (ConnectionError, BrokenPipeError) as exc:
            logger.debug("%s went away: %r", format_peer(handler.peer), exc)
        except asyncio.CancelledError:
            if not self._shutting_down and not self._lost:
                raise
        except Exception as exc:
            self._server.stats.handler_errors += 1
            _log_handler_error(handler, handler.peer, exc)
        finally:
            self._conn_closed = True
            writer.close()

    def _busy(self) -> bool:
        return False

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def shutdown(self) -> None:
        """Graceful stop: the handler's reader sees end of input."""
        if self._shutting_down or self._handler_task is None:
            return
        self._shutting_down = True
        if self._stream_transport is not None and not self._stream_transport.is_closing():
            self._stream_transport.pause_reading()
        self._reader.feed_eof()

    def abort(self) -> None:
        """Hard stop after the grace period."""
        self._shutting_down = True
        if self._handler_task is not None:
            self._handler_task.cancel()
        if self._stream_transport is not None:
            self._stream_transport.abort()

    def _maybe_unregister(self) -> None:
        task = self._handler_task
        if not (self._registered and self._lost):
            return
        if task is not None and not task.done():
            task.add_done_callback(lambda _t: self._maybe_unregister())
            return
        self._registered = False
        try:
            self._handler.finish()
        except Exception as exc:
            _log_handler_error(self._handler, self._handler.peer, exc)
        self._server._unregister(self)
