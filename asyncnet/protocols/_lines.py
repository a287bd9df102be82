"""Sans-IO line buffer: lines, limits and dot-terminated bodies, with no socket in sight.

Lines are split in one place: :meth:`LineSplitter.split`, which applies a splitter's
rules (delimiter, length limit, CR stripping).  Every line protocol in asyncnet goes
through it: the server's line connection, the line client, ``StreamHandler.readline``,
the framer's delimiter mode and the POP3/SMTP clients read lines from a
:class:`LineBuffer`, which splits with one; the server also calls it directly on a read
that holds exactly one line while nothing is buffered (most request/reply traffic).

A :class:`LineBuffer` is fed bytes as they arrive (:meth:`LineBuffer.feed`) and hands
back one complete line at a time (:meth:`LineBuffer.next_line`), or :data:`NEED_DATA`
when none is buffered yet::

    buf = LineBuffer(max_line_length=1024)
    buf.feed(b"USER bob\\r\\nPA")
    buf.next_line()              # b"USER bob"  (the \\r is stripped)
    buf.next_line()              # NEED_DATA
    buf.feed(b"SS secret\\r\\n")
    buf.next_line()              # b"PASS secret"

Rules every user of it gets for free:

* **Bounded.**  A line may hold ``max_line_length`` bytes before its delimiter (plus
  the ``\\r`` of a ``\\r\\n`` ending).  More raises :class:`~asyncnet.errors.LineTooLong`:
  as soon as a line is proven too long (a partial line is not waited for, so a peer
  cannot make us buffer without limit) -- from :meth:`feed`, or from
  :meth:`next_line` once the lines before it have been taken.
* **No resynchronisation.**  After ``LineTooLong`` the buffer is poisoned: every later
  call raises the same error.  The tail of an over-long line must never come back as
  a line of its own (``StreamReader.readline()`` does exactly that after a
  ``LimitOverrunError``: that is how commands get smuggled past a front end).
* **Linear time.**  The delimiter search resumes where the last one stopped and the
  consumed prefix is released in bulk, so many small lines or one line dribbled a
  byte at a time cost O(total bytes).
* **End of input.**  After :meth:`feed_eof` a final line without delimiter is still
  returned (:attr:`LineBuffer.last_line_unterminated` tells it apart), then :data:`EOF`.

Dot-terminated bodies (POP3, SMTP) are the buffer's second mode:
:meth:`LineBuffer.start_dot_body`, :meth:`LineBuffer.next_body`,
:meth:`LineBuffer.next_body_chunk` (see :mod:`asyncnet.protocols._dotbody`).
"""

from __future__ import annotations

from typing import Any, NoReturn, TypeVar

from ..errors import (
    ConfigurationError,
    FrameTooLarge,
    LineTooLong,
    LocalProtocolError,
    StateError,
)
from ._dotbody import DotBodyReader, dot_stuff, ensure_final_newline
from ._sentinels import END_OF_BODY, EOF, NEED_DATA, EndOfBody, EndOfInput, NeedData

__all__ = [
    "END_OF_BODY",
    "EOF",
    "NEED_DATA",
    "EndOfBody",
    "EndOfInput",
    "LineBuffer",
    "LineSplitter",
    "NeedData",
    "check_line_argument",
    "dot_stuff",
    "dot_unstuff",
    "ensure_final_newline",
]


_SMALL = 4096  # up to this size a buffer of several feeds stays bytes (copied on each feed)

_Bytes = TypeVar("_Bytes", bytes, bytearray)


class LineSplitter:
    """The rules lines are split by, and :meth:`split`, the one routine that applies them.

    * ``delimiter`` ends a line (not part of the line returned);
    * a line may hold ``max_line_length`` bytes before its delimiter; with the ``b"\\n"``
      delimiter and ``strip_cr`` a ``\\r`` before it is removed, and does not count;
    * a line over the limit is never split off: a reader that finds one refuses the
      input (:class:`~asyncnet.errors.LineTooLong`) rather than resynchronise.

    A :class:`LineBuffer` splits with one; a reader that already holds a whole read and
    nothing else (a server's request/reply path) may call :meth:`split` itself and get
    exactly the lines a buffer would.
    """

    __slots__ = ("_byte", "_delim", "_dlen", "_last_byte", "_max", "_strip", "_tail_limit")

    def __init__(
        self,
        max_line_length: int = 64 * 1024,
        *,
        delimiter: bytes = b"\n",
        strip_cr: bool = True,
    ) -> None:
        if max_line_length < 1:
            raise ConfigurationError(f"max_line_length must be at least 1, not {max_line_length}")
        if not delimiter:
            raise ConfigurationError("delimiter must not be empty")
        self._max = max_line_length
        self._delim = delimiter
        self._dlen = len(delimiter)
        # For whole_line(), one-byte delimiters only: the delimiter's byte (-1 otherwise,
        # which no byte equals), and its byte for "in" (an int: a memchr then).
        self._last_byte = delimiter[0] if len(delimiter) == 1 else -1
        self._byte = delimiter[0]
        # \r stripping is the \n delimiter's business only: with b"\r\n" there is no \r left.
        self._strip = strip_cr and delimiter == b"\n"
        # A partial line longer than this cannot end within the limit (a line of exactly
        # max_line_length may still get its \r, and part of a multi-byte delimiter may be
        # there already).  So when fewer lines than asked for were split off, the line
        # at the offset returned is over the limit exactly when the bytes from there on
        # are more than this: the caller's cheap test, no second search.
        self._tail_limit = max_line_length + int(self._strip) + self._dlen - 1

    @property
    def max_line_length(self) -> int:
        """Bytes a line may hold before its delimiter (not counting a stripped ``\\r``)."""
        return self._max

    @property
    def delimiter(self) -> bytes:
        """What ends a line."""
        return self._delim

    @property
    def strip_cr(self) -> bool:
        """Whether a ``\\r`` before the delimiter is removed (only ever with ``b"\\n"``)."""
        return self._strip

    @property
    def tail_limit(self) -> int:
        """The most bytes a line still in progress may hold (its delimiter not all there)."""
        return self._tail_limit

    def whole_line(self, data: _Bytes) -> _Bytes | None:
        """``data`` without its delimiter (nor a stripped ``\\r``) when it is exactly one
        line within the limit; else ``None`` (more lines, part of one, or too long).

        The request/reply shortcut, and :meth:`split`'s first step for one line at
        offset 0: a read that ends with the delimiter and holds no other is told without
        ``find()``, whose arguments are parsed from a tuple (that call alone costs as
        much as a request's whole trip through :meth:`split` otherwise).  A server asks
        this first for every read, so it takes one argument and builds no list.
        """
        end = len(data) - 1
        if end < 0 or data[end] != self._last_byte:
            return None
        if self._strip and end and data[end - 1] == 13:  # b"\r"
            end -= 1
        if end > self._max:
            return None
        line = data[:end]
        return None if self._byte in line else line

    def split(
        self, data: _Bytes, start: int, search_from: int, count: int, lines: list[_Bytes]
    ) -> int:
        """Append up to ``count`` complete lines of ``data[start:]`` to ``lines``, without
        their delimiters (nor a stripped ``\\r``); return the offset after the last one.

        ``search_from`` (at least ``start``) is where the delimiter search begins: a
        caller that already searched the bytes before it (and found no delimiter) passes
        where it stopped, so a line dribbled in byte by byte is searched once.

        Fewer than ``count`` lines means there is no complete line within the limit at
        the offset returned: its delimiter has not arrived, or the line is over the
        limit.  It is over the limit exactly when more than :attr:`tail_limit` bytes
        follow that offset.
        """
        if count == 1 and start == 0:
            line = self.whole_line(data)
            if line is not None:
                lines.append(line)
                return len(data)
        delim = self._delim
        i = data.find(delim, search_from)
        if i < 0:
            return start
        limit = self._max
        strip = self._strip
        while True:
            end = i
            if strip and end > start and data[end - 1] == 13:  # b"\r"
                end -= 1
            if end - start > limit:
                return start  # never split off: the caller refuses it
            lines.append(data[start:end])
            start = i + self._dlen
            count -= 1
            if not count:
                return start
            i = data.find(delim, start)
            if i < 0:
                return start

    def strip(self, line: bytes) -> bytes:
        """``line`` less a final ``\\r`` when this splitter strips them (a last line that
        the end of input, not a delimiter, ended)."""
        if self._strip and line.endswith(b"\r"):
            return line[:-1]
        return line


class LineBuffer(DotBodyReader):
    """Split a byte stream into lines, bounded, and read dot-terminated bodies."""

    __slots__ = (
        "_buf",
        "_delim",
        "_dlen",
        "_eof",
        "_error",
        "_max",
        "_partial_from",
        "_raw",
        "_scanned",
        "_splitter",
        "_start",
        "_tail_limit",
        "_want_strip_cr",
        "last_line_unterminated",
        "peer",
    )

    def __init__(
        self,
        max_line_length: int = 64 * 1024,
        *,
        delimiter: bytes = b"\n",
        strip_cr: bool = True,
        peer: object = None,
    ) -> None:
        self._max = max_line_length
        self._want_strip_cr = strip_cr
        self._raw = False
        self._configure(delimiter)
        # The bytes of the last feed() while nothing else was buffered (lines are sliced
        # out of them with one copy), or a bytearray collecting several feeds.
        self._buf: bytes | bytearray = b""
        self._start = 0  # bytes of _buf before this offset are consumed
        self._scanned = 0  # next_line(): no delimiter starts before this offset
        self._partial_from = 0  # feed(): the trailing partial line starts here
        self._eof = False
        self._error: LineTooLong | FrameTooLarge | None = None
        self._in_body = False
        self._body_done = False
        self._body_limit: int | None = None
        self._body_size = 0  # unstuffed bytes handed out by next_body_chunk()
        self._body_scan = 0  # body lines before this offset are complete and not the end
        self._body_dots = 0  # how many of those lines were dot-stuffed
        self.last_line_unterminated = False
        """True if the last line :meth:`next_line` returned was ended by the input's end."""
        self.peer = peer
        """Named in the errors raised (``LineTooLong(... from peer)``)."""

    def _configure(self, delimiter: bytes) -> None:
        self._splitter = splitter = LineSplitter(
            self._max, delimiter=delimiter, strip_cr=self._want_strip_cr
        )
        self._delim = delimiter
        self._dlen = len(delimiter)
        self._tail_limit = splitter.tail_limit

    def set_delimiter(self, delimiter: bytes | None) -> None:
        """Split the bytes buffered and to come at ``delimiter`` from now on.

        ``None`` stops splitting (raw mode, for a protocol that reads counted bytes
        with :meth:`take_bytes` for a while): no line limit applies until a delimiter
        is set again, and :meth:`next_line` refuses.
        """
        if self._error is not None:
            raise self._error
        if delimiter is None:
            self._raw = True
            return
        self._raw = False
        self._configure(delimiter)
        self._scanned = self._start  # search the buffered bytes again, for the new delimiter
        self._partial_from = self._start
        last = self._buf.rfind(delimiter, self._start)
        if last >= 0:
            self._partial_from = last + self._dlen
        if (
            len(self._buf) - self._partial_from > self._tail_limit
            and self._partial_from <= self._start
        ):
            self._poison(LineTooLong(self._max, len(self._buf) - self._partial_from, self.peer))

    def check_next_line(self) -> None:
        """Raise ``LineTooLong`` now if the next line is already complete and over the limit
        (:meth:`feed` only checks the partial line at the end; a framer that refuses a
        frame on the read that proves it too long calls this after each feed)."""
        if self._error is not None:
            raise self._error
        if self._in_body or self._raw:
            return
        buf, start = self._buf, self._start
        if len(buf) - start > self._tail_limit:  # else no line there can be over the limit
            lines: list[Any] = []
            self._splitter.split(buf, start, self._scanned, 1, lines)
            if not lines:
                self._over_limit()

    def peek(self, n: int) -> bytes:
        """Up to ``n`` buffered bytes, left in the buffer."""
        if self._error is not None:
            raise self._error
        return bytes(self._buf[self._start : self._start + n])

    # -- input -----------------------------------------------------------------

    @property
    def max_line_length(self) -> int:
        """Bytes a line may hold before its delimiter."""
        return self._max

    @property
    def delimiter(self) -> bytes:
        """What ends a line."""
        return self._delim

    @property
    def pending(self) -> int:
        """Bytes buffered and not yet returned."""
        return len(self._buf) - self._start

    @property
    def idle(self) -> bool:
        """True when nothing is buffered and input has not ended: no line can come
        without more input (after an error it is False: the next call raises)."""
        return not self._buf and not self._eof and self._error is None

    @property
    def at_eof(self) -> bool:
        """True once :meth:`feed_eof` was called."""
        return self._eof

    @property
    def in_body(self) -> bool:
        """True between :meth:`start_dot_body` and the body's end."""
        return self._in_body

    def feed(self, data: bytes | bytearray | memoryview) -> bool:
        """Add received bytes; raises ``LineTooLong`` if they prove a line over the limit.

        Returns whether the new bytes hold a delimiter: if not, no line was completed
        (a caller that took every line before may skip asking for one).
        """
        if self._error is not None:
            raise self._error
        if self._eof:
            raise StateError("feed() after feed_eof()")
        buf = self._buf
        if not buf:
            self._buf = buf = bytes(data)
            old = 0
        elif buf.__class__ is bytearray:
            old = len(buf)
            buf += data
        else:
            if self._start:
                self._compact(self._start)
                buf = self._buf
            old = len(buf)
            if old + len(data) <= _SMALL:
                self._buf = buf = buf + data  # bytes still: lines sliced out need no copy
            else:  # growing: a bytearray, so a line dribbled byte by byte stays O(n)
                self._buf = buf = bytearray(buf)
                buf += data
        # Only the new bytes (and a delimiter split across reads) are searched: O(len(data)).
        last = buf.rfind(self._delim, max(self._start, old - self._dlen + 1))
        if last >= 0:
            self._partial_from = last + self._dlen
        elif self._partial_from < self._start:
            self._partial_from = self._start
        # Lines before the long one are still handed out first: next_line() reports
        # the long one when it gets there.
        if (
            len(buf) - self._partial_from > self._tail_limit
            and self._partial_from <= self._start
            and not self._in_body
            and not self._raw
        ):
            self._poison(LineTooLong(self._max, len(buf) - self._partial_from, self.peer))
        return last >= 0

    def feed_eof(self) -> None:
        """Record the end of input (the peer closed or half-closed)."""
        if self._error is not None:
            raise self._error
        self._eof = True

    def take_bytes(self, n: int | None = None) -> bytes:
        """Remove and return up to ``n`` buffered bytes (all if ``None``).

        For a protocol that switches from lines to raw bytes (a length-counted body).
        """
        if self._error is not None:
            raise self._error
        end = len(self._buf) if n is None else min(len(self._buf), self._start + n)
        data = bytes(self._buf[self._start : end])  # bytes(bytes) is no copy
        self._consume(end)
        self._scanned = self._start
        return data

    # -- lines -----------------------------------------------------------------

    def next_line(self) -> bytes | NeedData | EndOfInput:
        """Return the next line without its delimiter (and ``\\r``), ``NEED_DATA`` or ``EOF``."""
        lines = self.next_lines(1)
        if lines:
            return lines[0]
        return EOF if self._eof else NEED_DATA

    def next_lines(self, limit: int) -> list[bytes]:
        """Up to ``limit`` lines at once, exactly those :meth:`next_line` would return one
        by one; ``[]`` when it would return ``NEED_DATA`` or ``EOF`` (tell them apart with
        :attr:`at_eof` and :attr:`pending`).  One call for a whole read of pipelined lines.

        An over-long line ends the list; the next call raises ``LineTooLong``.
        """
        # The hot path of every line protocol: one split for the whole batch.
        if self._error is not None or self._in_body or self._raw:
            self._not_in_lines()
        buf = self._buf
        lines: list[Any] = []
        end = self._splitter.split(buf, self._start, self._scanned, limit, lines)
        if not lines:
            line = self._no_line()
            return [line] if line.__class__ is bytes else []
        if end == len(buf):
            self._buf = b""  # all taken: the common case, nothing to move
            self._start = self._scanned = self._partial_from = self._body_scan = 0
        else:
            self._start = end
            # Fewer lines than asked for, and not an over-long one next (see split()):
            # no delimiter after them, and the next search starts near the end.
            if len(lines) < limit and len(buf) - end <= self._tail_limit:
                self._scanned = max(end, len(buf) - self._dlen + 1)
            else:
                self._scanned = end
            if end >= len(buf) - end and buf.__class__ is bytearray:
                self._compact(end)  # O(n) overall: at most what was consumed is moved
        if buf.__class__ is bytearray:
            return [bytes(line) for line in lines]
        return lines

    def _not_in_lines(self) -> None:
        if self._error is not None:
            raise self._error
        if self._raw:
            raise StateError("next_line() without a delimiter: use take_bytes()")
        raise StateError("next_line() inside a dot-terminated body: use next_body()")

    def _no_line(self) -> bytes | NeedData | EndOfInput:
        """No complete line within the limit is buffered: refuse an over-long one, or
        wait for more, or hand out the last line that the end of input ended."""
        buf, start = self._buf, self._start
        if len(buf) - start > self._tail_limit:
            self._over_limit()
        # split() found no delimiter from _scanned on: the next search starts near the end.
        self._scanned = max(start, len(buf) - self._dlen + 1)
        if not self._eof:
            return NEED_DATA
        if start == len(buf):
            return EOF
        line = bytes(buf[start:])
        self._consume(len(buf))
        self.last_line_unterminated = True
        return self._splitter.strip(line)

    def _over_limit(self) -> NoReturn:
        """The line at the start of the buffer is over the limit: poison, naming its length
        (up to its delimiter if that arrived, else all that was received)."""
        buf, start = self._buf, self._start
        i = buf.find(self._delim, start)
        received = (i if i >= 0 else len(buf)) - start
        self._poison(LineTooLong(self._max, received, self.peer))

    # -- bookkeeping -------------------------------------------------------------

    def _consume(self, end: int) -> None:
        self._start = end
        self._scanned = max(self._scanned, end)
        if end == len(self._buf):
            self._compact(end)
        elif end >= len(self._buf) - end and self._buf.__class__ is bytearray:
            # Only once the consumed part is at least half the buffer: O(n) overall.
            # (Bytes from one feed() are left alone: feed() copies their tail if needed.)
            self._compact(end)

    def _compact(self, end: int) -> None:
        """Drop the first ``end`` (consumed) bytes of the buffer."""
        buf = self._buf
        if end == len(buf):
            self._buf = b""
        elif buf.__class__ is bytearray:
            del buf[:end]
        else:
            self._buf = buf[end:]
        self._start = 0
        self._scanned = max(0, self._scanned - end)
        self._partial_from = max(0, self._partial_from - end)
        self._body_scan = max(0, self._body_scan - end)

    def _poison(self, error: LineTooLong | FrameTooLarge) -> NoReturn:
        self._error = error
        self._buf = b""
        self._start = self._scanned = self._partial_from = self._body_scan = 0
        raise error


def dot_unstuff(data: bytes, *, max_line_length: int = 64 * 1024) -> bytes:
    """Return the body of a complete stuffed block (terminator included); raises
    :class:`~asyncnet.errors.IncompleteFrame` without a terminator."""
    buf = LineBuffer(max_line_length)
    buf.start_dot_body()
    buf.feed(data)
    buf.feed_eof()
    body = buf.next_body()
    assert not isinstance(body, NeedData)  # input ended: a body or IncompleteFrame
    return body


def check_line_argument(value: str, what: str) -> str:
    """Return ``value`` if it cannot break a line protocol's framing, else raise
    :class:`~asyncnet.errors.LocalProtocolError` naming ``what`` (CR, LF and NUL are refused
    before anything is sent: that is how commands are injected)."""
    for bad, name in (("\r", "CR"), ("\n", "LF"), ("\0", "NUL")):
        if bad in value:
            raise LocalProtocolError(f"{what} must not contain {name}: {value!r}")
    return value
