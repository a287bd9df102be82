"""The line connection: line splitting and in-order dispatch for a ``LineHandler``.

``LineConnection`` is an :class:`asyncio.Protocol` that splits lines in
``data_received``, calls ``handle_line`` directly, drives coroutines eagerly and
writes all the replies produced by one read in a single ``write()``.

Its state is one :class:`State`, changed only through the transitions in
:data:`TRANSITIONS`.  Only in ``READY`` are lines handled; in every other state the
connection is *blocked*: it pauses reading and keeps unprocessed bytes, so replies stay
in order and memory stays bounded.  It is blocked in ``READY`` too while the peer does
not read what we write (``pause_writing``): that is the peer's flow control, not a state
of the session, and a suspended handler or a yield may overlap it.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import enum
import logging
import ssl
from typing import TYPE_CHECKING, Any

from ..._eager import PENDING, start
from ...errors import ConfigurationError, LineTooLong, PeerProtocolError, format_peer
from ...protocols import LineBuffer, LineSplitter
from .base import ConnectionBase, log_handler_error, logger
from .deadlines import Cancellable

if TYPE_CHECKING:
    from .._handlers import LineHandler
    from .._stream import StreamServer

__all__ = ["TRANSITIONS", "LineConnection", "State"]


class State(enum.Enum):
    """Where a line connection's session stands."""

    READY = "ready"
    """Lines are handled as they arrive."""
    BUSY = "busy"
    """A handler coroutine is suspended: the lines after its line wait for it."""
    UPGRADING = "upgrading"
    """Busy in ``start_tls()``: lines that arrived before the handshake are dropped."""
    YIELDING = "yielding"
    """A batch of ``lines_per_batch`` lines ended with more buffered: the event loop's
    turn first, then the rest."""
    CLOSING = "closing"
    """The session is over: no more lines are handled; the connection closes once its
    output is written and no handler coroutine runs."""
    LINGERING = "lingering"
    """After a protocol error: the error reply is written and our side shut down; the
    peer's bytes are drained until it closes, or the linger ends."""
    CLOSED = "closed"
    """The connection is lost."""


_READY = State.READY
_BUSY = State.BUSY
_UPGRADING = State.UPGRADING
_YIELDING = State.YIELDING
_CLOSING = State.CLOSING
_LINGERING = State.LINGERING
_CLOSED = State.CLOSED

TRANSITIONS: dict[State, frozenset[State]] = {
    _READY: frozenset({_BUSY, _UPGRADING, _YIELDING, _CLOSING, _CLOSED}),
    _BUSY: frozenset({_READY, _UPGRADING, _CLOSING, _CLOSED}),
    _UPGRADING: frozenset({_READY, _BUSY, _CLOSING, _CLOSED}),
    _YIELDING: frozenset({_READY, _UPGRADING, _CLOSING, _CLOSED}),
    _CLOSING: frozenset({_LINGERING, _CLOSED}),
    _LINGERING: frozenset({_CLOSED}),
    _CLOSED: frozenset(),
}
"""The states each state may change to; any other change is a bug."""


class _LineRules:
    """A handler class's line settings, shared by all its connections: five slots fewer
    per connection, and one object in cache for all of them."""

    __slots__ = (
        "batch",
        "delimiter",
        "encoding",
        "errors",
        "max_line_length",
        "reply_end",
        "reply_text",
        "split",
        "strip_cr",
        "tail_limit",
        "text_split",
        "utf8",
        "whole_line",
    )

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
        # A connection splits a read itself while it has nothing buffered: request/reply
        # connections never pay for a buffer of their own.
        splitter = LineSplitter(cls.max_line_length, delimiter=cls.delimiter, strip_cr=cls.strip_cr)
        self.split = splitter.split
        self.whole_line = splitter.whole_line
        self.delimiter = cls.delimiter
        self.max_line_length = cls.max_line_length
        self.strip_cr = splitter.strip_cr
        self.tail_limit = splitter.tail_limit
        # Replies that are ASCII text are joined as text and encoded once per read: the
        # same bytes as encoding each and adding the delimiter, in one copy instead of two.
        self.reply_text = (
            self.reply_end.decode("ascii") if self.utf8 and self.reply_end.isascii() else None
        )
        # An ASCII read is valid UTF-8 and splits the same as text: decoded once, whole.
        self.text_split = self.reply_text is not None and cls.delimiter == b"\n"

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

_TAIL_BYTES = 4096
"""The longest start of a line kept out of the line buffer: each read copies it once
more, so a longer one (a long line in many pieces) goes to the buffer."""

_LINGER_SECONDS = 2.0
"""After a protocol error, how long we keep draining the peer before aborting."""


class LineConnection(ConnectionBase, asyncio.Protocol):
    """Line splitting (a :class:`LineSplitter`, then a :class:`LineBuffer` once a read
    leaves part of a line) and in-order dispatch for a :class:`LineHandler`.

    Fairness: at most ``LineHandler.lines_per_batch`` lines are handled before the
    connection yields to the event loop (reading paused meanwhile), so one client
    pipelining thousands of lines per read cannot hold up everyone else.
    """

    # Slots, not a __dict__: with this many attributes CPython 3.11 gives every
    # instance a full dict (~1.5 KiB), the largest part of an idle connection.
    __slots__ = (
        "_held",
        "_lines",
        "_linger",
        "_out",
        "_rules",
        "_state",
        "_tail",
        "_task",
        "_texts",
    )

    _handler: LineHandler

    def __init__(self, server: StreamServer, handler: LineHandler) -> None:
        self._init_connection(server, handler)
        handler._connection = self
        self._rules = _LineRules.of(type(handler))
        self._state = _READY
        # None until a read leaves bytes that are not a whole line: most connections
        # never need a buffer (each read one request), and an idle one costs less.
        self._lines: LineBuffer | None = None
        # Replies produced by this read, written at once; None (not an empty list: 56
        # bytes per idle connection) while there are none.
        self._out: list[bytes] | None = None
        self._held: list[bytes] | None = None  # lines taken, not handled: a handler suspended
        # The start of a line after the last whole one of a read, while nothing else is
        # buffered (see _split_read): no LineBuffer for a pipelining client either.
        self._tail: bytes | None = None
        # ASCII text replies of the lines being handled, not yet encoded (see _handle_lines).
        self._texts: list[str] | None = None
        self._task: asyncio.Future[Any] | None = None
        self._linger: Cancellable | None = None

    # -- the state machine -------------------------------------------------------

    @property
    def state(self) -> State:
        """Where the session stands."""
        return self._state

    def _to(self, state: State) -> None:
        """Change the state: only along :data:`TRANSITIONS` (never on the per-line path)."""
        assert state in TRANSITIONS[self._state], f"{self._state} -> {state}"
        self._state = state
        if state is _CLOSED:
            self._conn_closed = True

    def _blocked(self) -> bool:
        """True unless lines may be handled now (READY, and the peer reads our output)."""
        return self._state is not _READY or self._write_blocked_since is not None

    @property
    def quiescent(self) -> bool:
        """True when the connection has nothing left to do until more input arrives (or
        the peer reads what was written, or a deadline passes): no handler coroutine
        runs and no batch waits for its turn."""
        return self._task is None and self._state is not _YIELDING

    async def wait_quiescent(self) -> None:
        """Return once :attr:`quiescent` is true."""
        while True:
            task = self._task
            if task is not None and not task.done():
                # Its done callback (_task_done) was added first, so it has run by the
                # time this wait returns.
                await asyncio.wait([task])
            elif task is not None or self._state is _YIELDING:
                # _task_done, or the batch's next turn, is already scheduled: one turn.
                await asyncio.sleep(0)
            else:
                return

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
        # The request/reply case: nothing buffered or held back, and this read is exactly
        # one line.  The same steps as _data_received() and _process() then, without the
        # buffer, their loop and their bookkeeping.
        if self._state is not _READY or self._write_blocked_since is not None:
            self._data_received(data)
            return
        lines = self._lines
        if (lines is not None and not lines.idle) or self._held is not None:
            self._data_received(data)
            return
        tail = self._tail
        if tail is not None:
            # The start of a line, kept by _split_read(): this read goes on from it.
            self._tail = None
            if not self._split_read(tail + data):
                self._data_received(tail + data)
            return
        line = self._rules.whole_line(data)
        if line is None:
            # More than one line, part of one, or too long.
            if not self._split_read(data):
                self._data_received(data)
            return
        reply = self._reply(line)
        if (
            reply is not None
            and not self._out
            and self._state is _READY
            and self._write_blocked_since is None
        ):
            # Not blocked: not lingering, not closed, no close requested, so nothing
            # for _settle() to do once the reply is written.
            # _write(), inlined: the one step this path runs for every request.
            self._stats.bytes_out += len(reply)
            self._seen = self._server.deadlines.tick
            if self._partial_since is not None:
                self._partial_since = None
            self._transport.write(reply)  # type: ignore[union-attr]
            return
        if reply is not None:
            self._queue(reply)  # behind other output, or not to be sent
        if self._partial_since is not None and not self._blocked():
            self._partial_since = None
        if self._out or self._state is _CLOSING:
            self._settle()
        elif reply is None:
            self._seen = self._server.deadlines.tick  # _write() notes it otherwise

    def _split_read(self, data: bytes) -> bool:
        """Handle a read (after the start of a line that :attr:`_tail` kept, if any)
        while ready, not blocked and nothing else buffered: split in one
        ``bytes.split()``, not line by line, and no line buffer unless the connection
        blocks part way.  False, having changed nothing, where the line buffer's rules
        need a closer look (a line over the limit, more lines than a batch)."""
        rules = self._rules
        parts: list[Any]
        if rules.text_split and data.isascii():
            # ASCII: one decode for the whole read, and the lines split as text.
            text = data.decode()
            parts = text.split("\n")
            tail_text = parts.pop()
            if len(parts) >= rules.batch or len(tail_text) > rules.tail_limit:
                return False
            if parts:
                if rules.strip_cr and "\r" in text:
                    parts = [p[:-1] if p[-1:] == "\r" else p for p in parts]
                if max(map(len, parts)) > rules.max_line_length:
                    return False
            tail = data[len(data) - len(tail_text) :] if tail_text else b""
            self._seen = self._server.deadlines.tick
            if parts:
                self._handle_texts(parts)
        else:
            parts = data.split(rules.delimiter)
            tail = parts.pop()
            if len(parts) >= rules.batch or len(tail) > rules.tail_limit:
                return False
            if parts:
                if rules.strip_cr and b"\r" in data:
                    parts = [p[:-1] if p[-1:] == b"\r" else p for p in parts]
                if max(map(len, parts)) > rules.max_line_length:
                    return False
            self._seen = self._server.deadlines.tick
            if parts:
                self._handle_lines(parts)
        state = self._state
        if state is _READY and self._write_blocked_since is None:
            if not tail:
                self._partial_since = None
            else:
                if self._partial_since is None:
                    self._partial_since = self._server.deadlines.tick
                if len(tail) <= _TAIL_BYTES:
                    self._tail = tail
                else:  # a long line arriving in pieces: the buffer grows it in O(n)
                    self._own_lines().feed(tail)  # within the limit: cannot raise
        elif tail and (state is _READY or state is _BUSY):
            # Blocked part way: the rest waits in the buffer, after the held lines.  (Not
            # when upgrading to TLS, which discards what came before the handshake, nor
            # once closing: nothing more is handled.)
            self._own_lines().feed(tail)
        if parts:
            self._settle()
        return True

    def _untail(self) -> None:
        """Move the start of a line kept by :meth:`_split_read` into the line buffer."""
        tail = self._tail
        if tail is not None:
            self._tail = None
            self._own_lines().feed(tail)  # within the limit, nothing buffered: cannot raise

    def _data_received(self, data: bytes) -> None:
        self._seen = self._server.deadlines.tick
        state = self._state
        if state is _CLOSING or state is _LINGERING:
            return  # the session is over: nothing more is ever handled
        if self._tail is not None:
            self._untail()
        lines = self._own_lines()
        blocked = self._blocked()
        try:
            completed = lines.feed(data)
        except LineTooLong as exc:
            if not blocked:
                self._peer_error(exc)
                return
            # The buffer is poisoned: next_line() raises this again once the line
            # in progress is done, so the error reply follows that line's reply.
            completed = True
        if blocked:
            self._pause_reading()
            return
        if completed:
            self._process()
        elif self._partial_since is None:
            # Part of a line, and every line before it was handled: only its clock starts.
            self._partial_since = self._server.deadlines.tick

    def eof_received(self) -> bool:
        if self._state is _LINGERING:
            return False  # the misbehaving peer has finished: close now
        if self._tail is not None:
            self._untail()
        with contextlib.suppress(LineTooLong):  # reported by next_line() in its turn
            self._own_lines().feed_eof()
        if not self._blocked():
            self._process()
        assert self._transport is not None
        return self._transport.get_extra_info("sslcontext") is None

    def pause_writing(self) -> None:
        self._stamp_write_blocked(True)  # blocked: see _blocked()
        self._pause_reading()

    def resume_writing(self) -> None:
        self._stamp_write_blocked(False)
        self._resume()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn_closed and not self._registered:
            return
        if self._state is not _CLOSED:
            self._to(_CLOSED)
        if self._linger is not None:
            self._linger.cancel()
        if self._task is not None:
            self._task.cancel()
        self._out = None
        self._held = None
        self._tail = None
        if self._texts:
            self._texts.clear()
        self._maybe_unregister()

    # -- line processing --------------------------------------------------------

    def _own_lines(self) -> LineBuffer:
        lines = self._lines
        if lines is None:
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
        if self._tail is not None:
            self._untail()
        lines = self._lines
        if lines is None:
            if self._held is None:  # nothing was ever buffered: nothing to handle
                self._settle()
                return
            lines = self._own_lines()  # lines held from a read that _split_read() split
        left = self._rules.batch
        try:
            # _blocked(), inlined in this loop: it runs for every line of a batch.
            while self._state is _READY and self._write_blocked_since is None:
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
                self._handle_lines(batch)
                if left > 0 and lines.idle:
                    break  # a short batch and nothing buffered: done until more input
        except LineTooLong as exc:
            self._peer_error(exc)
            return
        if not self._blocked():
            if lines.pending <= 0:
                self._partial_since = None
            elif self._partial_since is None:
                self._partial_since = self._server.deadlines.tick
        self._settle()

    def _handle_lines(self, batch: list[bytes]) -> None:
        """Handle ``batch`` in order, queueing the replies; if the connection blocks
        part way (a coroutine suspended, the handler closed, the peer stopped reading),
        hold the lines left for later."""
        rules = self._rules
        if rules.reply_text is None:
            reply_to = self._reply
            queue = self._queue
            for done, line in enumerate(batch, 1):
                reply = reply_to(line)
                if reply is not None:
                    queue(reply)
                if self._state is not _READY or self._write_blocked_since is not None:
                    self._hold(batch, done)
                    return
            return
        # UTF-8 lines, and replies kept as text while they are ASCII: _reply()'s steps,
        # inlined, with one encode for all the replies (_queue() and _flush() encode the
        # texts first, so that output queued meanwhile stays in order).
        handle = self._handler.handle_line
        self._texts = texts = []
        try:
            for done, line in enumerate(batch, 1):
                try:
                    text = line.decode()
                except UnicodeDecodeError:
                    self._reply(line)  # decodes it again, to report it
                else:
                    try:
                        result = handle(text)
                    except Exception as exc:
                        self._handler_failed(exc)
                    else:
                        if result.__class__ is str and result.isascii():
                            texts.append(result)
                        elif result is not None:
                            reply = self._finish_reply(result)
                            if reply is not None:
                                self._queue(reply)
                if self._state is not _READY or self._write_blocked_since is not None:
                    self._hold(batch, done)
                    return
        finally:
            self._encode_texts()
            self._texts = None

    def _handle_texts(self, batch: list[str]) -> None:
        """:meth:`_handle_lines` for lines already decoded (ASCII: each line is valid)."""
        handle = self._handler.handle_line
        texts: list[str] = []
        self._texts = texts
        append = texts.append
        remaining = iter(batch)
        try:
            for text in remaining:
                try:
                    result = handle(text)
                except Exception as exc:
                    self._handler_failed(exc)
                else:
                    if result.__class__ is str and result.isascii():
                        append(result)
                    elif result is not None:
                        reply = self._finish_reply(result)
                        if reply is not None:
                            self._queue(reply)
                if self._state is not _READY or self._write_blocked_since is not None:
                    self._hold([line.encode() for line in remaining], 0)
                    return
        finally:
            self._encode_texts()
            self._texts = None

    def _hold(self, batch: list[bytes], done: int) -> None:
        """Keep the lines of ``batch`` after the first ``done`` until the connection is
        ready again."""
        # But not when upgrading to TLS: what came before the handshake must never be
        # handled as if it came over TLS.
        self._held = None if self._state is _UPGRADING else batch[done:] or None

    def _encode_texts(self) -> None:
        """Queue the text replies kept by :meth:`_handle_lines`, encoded in one go."""
        texts = self._texts
        if texts:
            end = self._rules.reply_text
            assert end is not None
            data = (end.join(texts) + end).encode()
            texts.clear()
            if self._out is None:
                self._out = [data]
            else:
                self._out.append(data)

    def _finish_reply(self, result: Any) -> bytes | None:
        """What a handler's ``result`` other than ASCII text makes of its reply, as
        :meth:`_reply` does."""
        rules = self._rules
        try:
            if result.__class__ is str:
                return rules.encode(result)
            result = self._await(result)
            if result is not PENDING and result is not None:
                return rules.encode(result)
        except Exception as exc:
            self._handler_failed(exc)
        return None

    def _yield_to_loop(self) -> None:
        self._to(_YIELDING)
        self._pause_reading()
        self._server.loop.call_soon(self._end_yield)

    def _end_yield(self) -> None:
        if self._state is _YIELDING:
            self._to(_READY)
        self._resume()

    def _end_of_input(self) -> None:
        assert self._task is None  # only reached while READY
        self._to(_CLOSING)

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
        if self._state is _READY:
            self._to(_BUSY)
        # else UPGRADING (it suspended in start_tls()), or CLOSING (it asked to close
        # first): the task keeps the connection open until it is done either way.
        self._pause_reading()
        task.add_done_callback(self._task_done)
        return PENDING

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._task = None
        if self._state is _CLOSED:
            if not task.cancelled():
                task.exception()  # retrieved: the peer is gone, nobody to tell
            self._maybe_unregister()
            return
        if self._state is _BUSY:
            self._to(_READY)
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

    def _pause_reading(self) -> None:
        """Stop reading: lines wait, in the kernel, until the connection is ready again.

        Called on every change into a blocked state; pausing twice is harmless."""
        state = self._state
        if state is _LINGERING or state is _CLOSED:
            return  # lingering after an error: keep draining the peer
        if state is _UPGRADING:
            # The plaintext transport is loop.start_tls()'s until the handshake is done
            # (pausing it would stall the handshake or the TLS records behind it), and
            # the TLS transport is not ours yet: bytes that come meanwhile (one turn's
            # worth) are buffered, and the next read while busy pauses the TLS one.
            return
        transport = self._transport
        if transport is not None:
            transport.pause_reading()

    def _resume(self) -> None:
        """Something that blocked the connection ended: read and handle lines again, if
        nothing else blocks it."""
        if self._blocked():
            return
        transport = self._transport
        assert transport is not None
        if not transport.is_closing():
            transport.resume_reading()
        self._process()  # lines held back, an end of input, or an error waiting its turn

    def _settle(self) -> None:
        """Write what the handler produced; close if the session is over."""
        self._flush()
        if self._state is _CLOSING and self._task is None:
            assert self._transport is not None
            self._transport.close()

    def _flush(self) -> None:
        """Write the queued output now (not once lingering or closed)."""
        if self._texts:
            self._encode_texts()
        out = self._out
        if out:
            state = self._state
            if state is _LINGERING or state is _CLOSED or self._transport is None:
                return
            self._out = None
            self._write(out[0] if len(out) == 1 else b"".join(out))

    def _queue(self, data: bytes) -> None:
        """Add ``data`` to the output written by the next :meth:`_settle`."""
        if self._texts:
            self._encode_texts()  # replies of earlier lines go first
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
        return self._state is _CLOSED and self._task is None

    # -- called by the handler and the server -----------------------------------

    def send_line(self, line: str) -> None:
        """Write ``line`` now, after the output queued before it (never closes)."""
        if self._state is _CLOSED:
            return
        self._queue(self._rules.encode(line))
        self._flush()

    def request_close(self) -> None:
        """End the session after the reply in progress, if any."""
        state = self._state
        if state is _CLOSING or state is _LINGERING or state is _CLOSED:
            return
        self._to(_CLOSING)
        self._pause_reading()

    def shutdown(self) -> None:
        """Graceful stop: close now if idle, else after the line being handled."""
        state = self._state
        if state is _CLOSED:
            return
        if state is _LINGERING:
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
        # the handler suspends (_process: UPGRADING), the bytes still buffered here.
        self._held = None
        state = self._state
        if state is _READY or state is _BUSY or state is _YIELDING:
            self._to(_UPGRADING)
        self._tail = None
        if self._lines is not None:
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
        except BaseException:
            self._upgraded()
            raise
        if transport is None:
            self._upgraded()
            raise ConnectionResetError("the connection was lost during the TLS handshake")
        self._transport = transport
        self._handler.transport = transport
        self._upgraded()
        return transport

    def _upgraded(self) -> None:
        """The TLS handshake is over (or failed): busy again, or ready."""
        if self._state is _UPGRADING:
            if self._task is not None:
                self._to(_BUSY)  # the handler goes on after its handshake
            else:
                self._to(_READY)  # not called from handle_line(): read again
                self._resume()

    def abort_with_reason(self, reason: str) -> None:
        """Drop the connection at the handler's request (a slow consumer...)."""
        if self._state is _CLOSED:
            return
        logger.warning("dropping %s: %s", format_peer(self._handler.peer), reason)
        self._out = None
        if self._texts:
            self._texts.clear()
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
        if (
            transport is None
            or self._state is not _CLOSING
            or self._task is not None
            or not transport.can_write_eof()
        ):
            self._settle()
            return
        self._flush()
        transport.write_eof()
        self._to(_LINGERING)
        # The linger is a deadline like the others: on the sweep's clock, which a
        # test kit may advance by hand.
        self._linger = self._server.deadlines.call_later(_LINGER_SECONDS, transport.abort)
        transport.resume_reading()

    def _handler_failed(self, exc: BaseException) -> None:
        self._stats.handler_errors += 1
        log_handler_error(self._handler, self._handler.peer, exc)
        self.request_close()
