"""Sans-IO line buffer: lines, limits and dot-terminated bodies, with no socket in sight.

One :class:`LineBuffer` is the line splitter of every line protocol in asyncnet: the
server's line connection, the line client, ``StreamHandler.readline``, the framer's
delimiter mode, and the POP3/SMTP multi-line bodies.  It is fed bytes as they arrive
(:meth:`LineBuffer.feed`) and hands back one complete line at a time
(:meth:`LineBuffer.next_line`), or :data:`NEED_DATA` when none is buffered yet::

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

(Longer than asyncnet's ~400-line guide: one class whose hot paths -- ``next_line``,
``next_lines``, ``single_line`` -- are written out rather than factored, for speed.)

Dot-terminated bodies (POP3, SMTP) are the buffer's second mode:
:meth:`LineBuffer.start_dot_body`, :meth:`LineBuffer.next_body`,
:meth:`LineBuffer.next_body_chunk` (see :mod:`asyncnet.protocols._dotbody`).
"""

from __future__ import annotations

from typing import NoReturn

from ..errors import FrameTooLarge, LineTooLong, LocalProtocolError
from ._dotbody import DotBodyReader, dot_stuff, ensure_final_newline
from ._sentinels import END_OF_BODY, EOF, NEED_DATA, EndOfBody, EndOfInput, NeedData

__all__ = [
    "END_OF_BODY",
    "EOF",
    "NEED_DATA",
    "EndOfBody",
    "EndOfInput",
    "LineBuffer",
    "NeedData",
    "check_line_argument",
    "dot_stuff",
    "dot_unstuff",
    "ensure_final_newline",
]


_SMALL = 4096  # up to this size a buffer of several feeds stays bytes (copied on each feed)


class LineBuffer(DotBodyReader):
    """Split a byte stream into lines, bounded, and read dot-terminated bodies."""

    __slots__ = (
        "_buf",
        "_cr_slack",
        "_delim",
        "_dlen",
        "_eof",
        "_error",
        "_max",
        "_partial_from",
        "_raw",
        "_raw_limit",
        "_scanned",
        "_start",
        "_strip_cr",
        "_tail_limit",
        "_want_strip_cr",
        "last_line_unterminated",
        "peer",
        "shared",
        "shortcut_limit",
    )

    def __init__(
        self,
        max_line_length: int = 64 * 1024,
        *,
        delimiter: bytes = b"\n",
        strip_cr: bool = True,
        peer: object = None,
    ) -> None:
        if max_line_length < 1:
            raise ValueError(f"max_line_length must be at least 1, not {max_line_length}")
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
        self.shared = False
        """True once :meth:`share` was called: the buffer must not be fed."""
        self.shortcut_limit = -1
        """Set by :meth:`share`: see there."""

    def share(self) -> None:
        """Let several users share this empty, never fed buffer for one-line checks.

        Such a buffer must not be fed.  With the default rules (``b"\\n"``, CR stripped)
        it also sets ``shortcut_limit`` to the longest ``len(data) - 1`` for which a
        user may take ``data`` as one line by hand once it has found ``data``'s only
        ``\\n`` at its end: ``data[:-1]``, less a trailing ``\\r``, is then exactly what
        :meth:`single_line` would return.  (A method call costs as much as that whole
        check on a server's request path.)  Otherwise ``shortcut_limit`` stays -1.
        """
        if self._buf or self._eof or self._error is not None or self._in_body or self._raw:
            raise ValueError("only an empty, never fed line buffer can be shared")
        self.shared = True
        if self._delim == b"\n" and self._strip_cr:
            # Conservative by the CR's byte of slack: a line of exactly max_line_length
            # bytes plus \r\n takes the long way, through single_line().
            self.shortcut_limit = self._max

    def _configure(self, delimiter: bytes) -> None:
        if not delimiter:
            raise ValueError("delimiter must not be empty")
        self._delim = delimiter
        self._dlen = len(delimiter)
        # \r stripping is the \n delimiter's business only: with b"\r\n" there is no \r left.
        self._strip_cr = self._want_strip_cr and delimiter == b"\n"
        # A line of exactly max_line_length may arrive with its \r: allow that one byte.
        self._cr_slack = 1 if self._strip_cr else 0
        self._raw_limit = self._max + self._cr_slack
        # A partial line longer than this cannot end within the limit, even if the first
        # bytes of a multi-byte delimiter are already there.
        self._tail_limit = self._max + self._cr_slack + self._dlen - 1

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
        i = buf.find(self._delim, self._scanned)
        if i < 0:
            self._scanned = max(start, len(buf) - self._dlen + 1)
            return
        self._scanned = i  # no delimiter before it: next_line() resumes here
        length = i - start
        if self._strip_cr and i > start and buf[i - 1] == 13:
            length -= 1
        if length > self._max:
            self._poison(LineTooLong(self._max, length, self.peer))

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
            raise RuntimeError("feed() after feed_eof()")
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
        # The hot path of every line protocol: few attribute loads, no calls but find().
        if self._error is not None or self._in_body or self._raw:
            self._not_in_lines()
        buf = self._buf
        start = self._start
        i = buf.find(self._delim, self._scanned)
        if i < 0:
            return self._no_line()
        if i - start > self._raw_limit:
            self._poison(LineTooLong(self._max, i - start, self.peer))
        end = i + self._dlen
        if self._strip_cr and i > start and buf[i - 1] == 13:  # b"\r"
            i -= 1
        elif i - start > self._max:  # the byte of slack was not a \r
            self._poison(LineTooLong(self._max, i - start, self.peer))
        line = buf[start:i]
        if end == len(buf):
            self._buf = b""  # all taken: the common case, nothing to move
            self._start = self._scanned = self._partial_from = self._body_scan = 0
        else:
            self._start = self._scanned = end
            if end >= len(buf) - end and buf.__class__ is bytearray:
                self._compact(end)  # O(n) overall: at most what was consumed is moved
        return line if line.__class__ is bytes else bytes(line)

    def next_lines(self, limit: int) -> list[bytes]:
        """Up to ``limit`` lines at once, exactly those :meth:`next_line` would return one
        by one; ``[]`` when it would return ``NEED_DATA`` or ``EOF`` (tell them apart with
        :attr:`at_eof` and :attr:`pending`).  One call for a whole read of pipelined lines.

        An over-long line ends the list; the next call raises ``LineTooLong``.
        """
        if self._error is not None or self._in_body or self._raw:
            self._not_in_lines()
        buf = self._buf
        pos = self._start
        find, delim, dlen = buf.find, self._delim, self._dlen
        raw_limit, limit_len, strip = self._raw_limit, self._max, self._strip_cr
        lines: list[bytes] = []
        i = find(delim, self._scanned)
        scanned = pos  # where the next search may start
        while i >= 0:
            j = i
            if strip and j > pos and buf[j - 1] == 13:  # b"\r"
                j -= 1
            if i - pos > raw_limit or j - pos > limit_len:
                scanned = i  # over-long: next_line() reports it, after these lines
                break
            lines.append(buf[pos:j])  # type: ignore[arg-type]
            pos = scanned = i + dlen
            if len(lines) == limit:
                break
            i = find(delim, pos)
        else:
            scanned = max(pos, len(buf) - dlen + 1)
        if not lines:
            if i < 0 and not self._eof and len(buf) - pos <= self._tail_limit:
                self._scanned = scanned  # NEED_DATA, the common way: no second search
                return []
            line = self.next_line()  # the end of input, or an over-long line
            return [line] if line.__class__ is bytes else []
        if pos == len(buf):
            self._buf = b""
            self._start = self._scanned = self._partial_from = self._body_scan = 0
        else:
            self._start = pos
            self._scanned = scanned
            if pos >= len(buf) - pos and buf.__class__ is bytearray:
                self._compact(pos)
        if buf.__class__ is bytearray:
            return [bytes(line) for line in lines]
        return lines

    def _not_in_lines(self) -> None:
        if self._error is not None:
            raise self._error
        if self._raw:
            raise RuntimeError("next_line() without a delimiter: use take_bytes()")
        raise RuntimeError("next_line() inside a dot-terminated body: use next_body()")

    def _no_line(self) -> bytes | NeedData | EndOfInput:
        buf, start = self._buf, self._start
        if len(buf) - start > self._tail_limit:
            self._poison(LineTooLong(self._max, len(buf) - start, self.peer))
        self._scanned = max(start, len(buf) - self._dlen + 1)
        if not self._eof:
            return NEED_DATA
        if start == len(buf):
            return EOF
        line = bytes(buf[start:])
        self._consume(len(buf))
        self.last_line_unterminated = True
        return self._strip(line)

    def single_line(self, data: bytes) -> bytes | None:
        """The request/reply shortcut: if nothing is buffered and ``data`` is exactly one
        complete line within the limit, return that line (as :meth:`next_line` would)
        without buffering anything; otherwise return ``None`` and change nothing
        (then :meth:`feed` ``data`` as usual).

        A server reading one request per ``recv()`` saves the buffer's copy and
        bookkeeping this way; the rules are the same as for :meth:`next_line`.
        """
        end = len(data) - self._dlen
        if (
            self._buf
            or end < 0
            or end > self._max + self._cr_slack
            or data.find(self._delim) != end
            or self._error is not None
            or self._in_body
            or self._raw
            or self._eof
        ):
            return None
        if self._strip_cr and data[end - 1 : end] == b"\r":
            return data[: end - 1]
        if end > self._max:
            return None  # the byte of slack was not a \r: next_line() refuses it
        return data[:end]

    def _strip(self, line: bytes) -> bytes:
        if self._strip_cr and line.endswith(b"\r"):
            return line[:-1]
        return line

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
