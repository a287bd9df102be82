"""The line connection: line splitting and in-order dispatch for a ``LineHandler``.

``LineConnection`` is an :class:`asyncio.Protocol` that splits lines in
``data_received``, calls ``handle_line`` directly, drives coroutines eagerly and
writes all the replies produced by one read in a single ``write()``.  While a
coroutine is suspended, while the peer is not reading (``pause_writing``) or once
the session is closing, the connection is *blocked*: it pauses reading and keeps
unprocessed bytes, so replies stay in order and memory stays bounded.

(Longer than asyncnet's ~400-line guide: one state machine -- callbacks, flow control,
lingering after a protocol error -- whose parts all read and write the same flags.)
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import ssl
from typing import TYPE_CHECKING, Any

from ..._eager import PENDING, start
from ...errors import ConfigurationError, LineTooLong, PeerProtocolError, format_peer
from ...protocols import LineBuffer
from .base import ConnectionBase, log_handler_error, logger

if TYPE_CHECKING:
    from .._handlers import LineHandler
    from .._stream import StreamServer

__all__ = ["LineConnection"]


class _LineRules:
    """A handler class's line settings, shared by all its connections: five slots fewer
    per connection, and one object in cache for all of them."""

    __slots__ = ("batch", "empty", "encoding", "errors", "reply_end", "utf8")

    def __init__(self, cls: type[LineHandler]) -> None:
        if not cls.delimiter:
            raise ConfigurationError(f"{cls.__name__}.delimiter must not be empty")
        if cls.lines_per_batch < 1:
            raise ConfigurationError(f"{cls.__name__}.lines_per_batch must be >= 1")
        self.batch = cls.lines_per_batch
        self.encoding = cls.encoding
        self.errors = cls.errors
        self.reply_end = cls.reply_delimiter if cls.reply_delimiter is not None else cls.delimiter
        # bytes.decode()/str.encode() without arguments take a shortcut: naming the
        # codec and "strict" costs about 60 ns per request and reply.
        self.utf8 = cls.errors == "strict" and codecs.lookup(cls.encoding).name == "utf-8"
        # Until a read is more than one whole line, a connection shares this empty
        # buffer (single_line() only reads it): request/reply connections never pay
        # for a buffer of their own.
        self.empty = LineBuffer(cls.max_line_length, delimiter=cls.delimiter, strip_cr=cls.strip_cr)
        self.empty.share()

    @staticmethod
    def of(cls: type[LineHandler]) -> _LineRules:
        """The rules for handler class ``cls``, as its attributes say now."""
        key = (
            cls.max_line_length,
            cls.delimiter,
            cls.strip_cr,
            cls.encoding,
            cls.errors,
            cls.reply_delimiter,
            cls.lines_per_batch,
        )
        rules = _RULES.get(key)
        if rules is None:
            rules = _RULES[key] = _LineRules(cls)
        return rules

    def encode(self, text: str) -> bytes:
        """``text`` as a reply: encoded, with the reply delimiter."""
        return text.encode(self.encoding, self.errors) + self.reply_end


_RULES: dict[tuple[Any, ...], _LineRules] = {}
"""By the class attributes they were made from (a test may change them between servers)."""

_LINGER_SECONDS = 2.0
"""After a protocol error, how long we keep draining the peer before aborting."""


class LineConnection(ConnectionBase, asyncio.Protocol):
    """Line splitting (a :class:`LineBuffer`) and in-order dispatch for a :class:`LineHandler`.

    Fairness: at most ``LineHandler.lines_per_batch`` lines are handled before the
    connection yields to the event loop (reading paused meanwhile), so one client
    pipelining thousands of lines per read cannot hold up everyone else.
    """

    # Slots, not a __dict__: with this many attributes CPython 3.11 gives every
    # instance a full dict (~1.5 KiB), the largest part of an idle connection.
    __slots__ = (
        "_blocked",
        "_close_requested",
        "_discard_held",
        "_held",
        "_lines",
        "_linger",
        "_out",
        "_reading_paused",
        "_rules",
        "_task",
        "_write_paused",
        "_yielding",
    )

    _handler: LineHandler

    def __init__(self, server: StreamServer, handler: LineHandler) -> None:
        self._init_connection(server, handler)
        handler._connection = self
        self._rules = rules = _LineRules.of(type(handler))
        self._lines = rules.empty
        # Replies produced by this read, written at once; None (not an empty list: 56
        # bytes per idle connection) while there are none.
        self._out: list[bytes] | None = None
        self._held: list[bytes] | None = None  # lines taken, not handled: a handler suspended
        self._discard_held = False  # start_tls(): lines behind the STARTTLS are dropped
        self._task: asyncio.Future[Any] | None = None
        self._blocked = False
        self._reading_paused = False
        self._write_paused = False
        self._yielding = False  # a batch ended with lines left: the loop's turn
        self._close_requested = False
        self._linger: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------

    def _start(self, transport: asyncio.Transport) -> None:
        handler = self._handler
        try:
            handler.setup()
            greeting = handler.greeting()
            if greeting is not None:
                self._queue(self._rules.encode(greeting))
        except Exception as exc:
            self._handler_failed(exc)
        self._settle()

    def data_received(self, data: bytes) -> None:
        size = len(data)
        self._stats.bytes_in += size
        # The request/reply case: exactly one complete line and nothing held back.  While
        # nothing was ever buffered, LineBuffer.share() lets us split it by hand.
        # (_close_requested implies _blocked: request_close() and _end_of_input() block.)
        # The same steps as _process() then, without its loop and bookkeeping.
        end = size - 1
        line: bytes | None
        if not (
            0 <= end <= self._lines.shortcut_limit
            and data[end] == 10
            and 10 not in (line := data[: end - 1] if end and data[end - 1] == 13 else data[:end])
            and not self._blocked
        ) and (self._blocked or (line := self._lines.single_line(data)) is None):
            self._data_received(data)
            return
        reply = self._reply(line)
        if reply is not None and not self._out and not self._blocked:
            # Not blocked: no linger, not closed, no close requested (see above), so
            # nothing for _settle() to do once the reply is written.
            # _write(), inlined: the one step this path runs for every request.
            self._stats.bytes_out += len(reply)
            self._seen = self._server.deadlines.tick
            if self._partial_since is not None:
                self._partial_since = None
            self._transport.write(reply)  # type: ignore[union-attr]
            return
        if reply is not None:
            self._queue(reply)  # behind other output, or not to be sent
        if self._partial_since is not None and not self._blocked:
            self._partial_since = None
        if self._out or self._close_requested:
            self._settle()
        elif reply is None:
            self._seen = self._server.deadlines.tick  # _write() notes it otherwise

    def _data_received(self, data: bytes) -> None:
        self._seen = self._server.deadlines.tick
        if self._close_requested:
            return  # after a protocol error nothing more is ever handled
        lines = self._own_lines()
        try:
            completed = lines.feed(data)
        except LineTooLong as exc:
            if not self._blocked:
                self._peer_error(exc)
                return
            # The buffer is poisoned: next_line() raises this again once the line
            # in progress is done, so the error reply follows that line's reply.
            completed = True
        if self._blocked:
            self._pause_reading()
            return
        if completed:
            self._process()
        elif self._partial_since is None:
            # Part of a line, and every line before it was handled: only its clock starts.
            self._partial_since = self._server.deadlines.tick

    def eof_received(self) -> bool:
        if self._linger is not None:
            return False  # the misbehaving peer has finished: close now
        with contextlib.suppress(LineTooLong):  # reported by next_line() in its turn
            self._own_lines().feed_eof()
        if not self._blocked:
            self._process()
        assert self._transport is not None
        return self._transport.get_extra_info("sslcontext") is None

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_blocked()
        self._stamp_write_blocked(True)

    def resume_writing(self) -> None:
        self._write_paused = False
        self._stamp_write_blocked(False)
        self._resume()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn_closed and not self._registered:
            return
        self._conn_closed = True
        self._blocked = True
        if self._linger is not None:
            self._linger.cancel()
        if self._task is not None:
            self._task.cancel()
        self._out = None
        self._held = None
        self._maybe_unregister()

    # -- line processing --------------------------------------------------------

    def _own_lines(self) -> LineBuffer:
        lines = self._lines
        if lines.shared:
            cls = type(self._handler)
            self._lines = lines = LineBuffer(
                cls.max_line_length,
                delimiter=cls.delimiter,
                strip_cr=cls.strip_cr,
                peer=self._handler.peer,
            )
        return lines

    def _process(self) -> None:
        """Handle the buffered lines, up to a batch, then write the replies at once."""
        lines = self._lines
        if lines.shared:  # nothing was ever buffered: nothing to handle
            self._settle()
            return
        queue = self._queue
        reply_to = self._reply
        left = self._rules.batch
        try:
            while not self._blocked:
                batch = self._held
                if batch:
                    self._held = None
                elif left <= 0:
                    if not lines.idle:
                        self._yield_to_loop()  # more lines (or their end): after the others
                    break
                else:
                    batch = lines.next_lines(left)
                    if not batch:
                        if lines.at_eof and not lines.pending:
                            self._end_of_input()
                        break
                left -= len(batch)
                remaining = iter(batch)
                for line in remaining:
                    reply = reply_to(line)
                    if reply is not None:
                        queue(reply)
                    if self._blocked:  # a coroutine suspended: keep the rest for later
                        self._held = None if self._discard_held else list(remaining) or None
                        break
                else:
                    if left > 0 and lines.idle:
                        break  # a short batch and nothing buffered: done until more input
        except LineTooLong as exc:
            self._peer_error(exc)
            return
        if not self._blocked:
            if lines.pending <= 0:
                self._partial_since = None
            elif self._partial_since is None:
                self._partial_since = self._server.deadlines.tick
        self._settle()

    def _yield_to_loop(self) -> None:
        self._yielding = True
        self._update_blocked()
        self._server.loop.call_soon(self._end_yield)

    def _end_yield(self) -> None:
        self._yielding = False
        if not self._conn_closed:
            self._resume()

    def _end_of_input(self) -> None:
        if self._task is None:
            self._close_requested = True
            self._blocked = True

    def _reply(self, line: bytes) -> bytes | None:
        """Decode, handle and encode one line: the reply's bytes, or ``None`` (no reply,
        or not yet: a coroutine suspended)."""
        rules = self._rules
        try:
            text = line.decode() if rules.utf8 else line.decode(rules.encoding, rules.errors)
        except UnicodeDecodeError as exc:
            self._peer_error(PeerProtocolError(f"invalid {rules.encoding} in line: {exc.reason}"))
            return None
        try:
            result = self._handler.handle_line(text)
            if result.__class__ is str:
                if rules.utf8:
                    return result.encode() + rules.reply_end
                return rules.encode(result)
            if result is not None:
                result = self._await(result)
                if result is not PENDING and result is not None:
                    return rules.encode(result)
        except Exception as exc:
            self._handler_failed(exc)
        return None

    def _await(self, result: Any) -> Any:
        value, task = start(
            result,
            in_task=type(self._handler).run_in_task,
            expected="handle_line() must return str, None or an awaitable",
        )
        if task is None:
            return value
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
                    self._queue(self._rules.encode(result))
                except Exception as encode_exc:
                    self._handler_failed(encode_exc)
        self._settle()
        self._resume()

    # -- flow control -----------------------------------------------------------

    def _update_blocked(self) -> None:
        self._blocked = (
            self._task is not None
            or self._write_paused
            or self._yielding
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
        self._process()  # lines held back, an end of input, or an error waiting its turn

    def _settle(self) -> None:
        """Write what the handler produced; close if the session is over."""
        if self._linger is not None:
            return
        out = self._out
        transport = self._transport
        if out and transport is not None and not self._conn_closed:
            data = out[0] if len(out) == 1 else b"".join(out)
            self._out = None
            self._write(data)
        if self._close_requested and self._task is None and not self._conn_closed:
            assert transport is not None
            transport.close()

    def _queue(self, data: bytes) -> None:
        """Add ``data`` to the output written by the next :meth:`_settle`."""
        if self._out is None:
            self._out = [data]
        else:
            self._out.append(data)

    def _write(self, data: bytes) -> None:
        """Write ``data`` now, counted (the caller checked the connection is open)."""
        self._stats.bytes_out += len(data)
        self._seen = self._server.deadlines.tick
        self._transport.write(data)  # type: ignore[union-attr]

    def _busy(self) -> bool:
        return self._task is not None

    def _gone(self) -> bool:
        return self._conn_closed and self._task is None

    # -- called by the handler and the server -----------------------------------

    def send_line(self, line: str) -> None:
        if self._conn_closed:
            return
        self._queue(self._rules.encode(line))
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

    async def start_tls(
        self,
        context: ssl.SSLContext,
        *,
        server_side: bool = True,
        handshake_timeout: float | None = None,
    ) -> asyncio.Transport:
        """Upgrade to TLS; every byte that arrived before the handshake is discarded."""
        # Whatever the client sent after STARTTLS/STLS came in plaintext, maybe from a
        # man in the middle (the CVE-2011-0411 family): it must never be handled as if
        # it had come over TLS.  Lines of this batch not yet handled are dropped when
        # the handler suspends (_process), the bytes still buffered here.
        self._held = None
        self._discard_held = True
        if not self._lines.shared:
            self._lines.take_bytes()
        assert self._transport is not None
        try:
            transport = await self._server.loop.start_tls(
                self._transport,
                self,
                context,
                server_side=server_side,
                ssl_handshake_timeout=handshake_timeout,
            )
        finally:
            self._discard_held = False
        if transport is None:
            raise ConnectionResetError("the connection was lost during the TLS handshake")
        self._transport = transport
        self._handler.transport = transport
        return transport

    def abort_with_reason(self, reason: str) -> None:
        """Drop the connection at the handler's request (a slow consumer...)."""
        if self._conn_closed:
            return
        logger.warning("dropping %s: %s", format_peer(self._handler.peer), reason)
        self._out = None
        self.request_close()
        self.abort()

    @property
    def write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() if self._transport else 0

    # -- failures ---------------------------------------------------------------

    def _peer_error(self, exc: PeerProtocolError) -> None:
        self._stats.protocol_errors += 1
        self._log_closing(logging.WARNING, exc)
        if isinstance(exc, LineTooLong):
            try:
                self._handler.line_too_long(exc)
            except Exception as hook_exc:
                log_handler_error(self._handler, self._handler.peer, hook_exc)
        reply = type(self._handler).error_reply
        if reply is not None:
            text = reply.format(reason=str(exc))
            self._queue(text.encode(self._rules.encoding, "replace") + self._rules.reply_end)
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
        self._linger = self._server.loop.call_later(_LINGER_SECONDS, transport.abort)
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    def _handler_failed(self, exc: BaseException) -> None:
        self._stats.handler_errors += 1
        log_handler_error(self._handler, self._handler.peer, exc)
        self.request_close()
