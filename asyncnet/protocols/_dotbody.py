"""Dot-terminated bodies, RFC 1939 section 3 and RFC 5321 section 4.5.2: the body mode of
:class:`~asyncnet.protocols._lines.LineBuffer` and the writer's :func:`dot_stuff`.

POP3 multi-line replies and SMTP ``DATA`` end with a line holding a single ``.``;
a body line that starts with ``.`` gets one more ``.`` in front on the wire.
:meth:`DotBodyReader.start_dot_body` switches the buffer to that mode until the
terminator; :meth:`DotBodyReader.next_body` returns the whole body unstuffed, and
:meth:`DotBodyReader.next_body_chunk` streams it (for messages too big to hold).
:func:`dot_stuff` is the writer's side.  Bodies are byte-exact: each line keeps its
own ending (``\\r\\n`` as sent, or a bare ``\\n`` from a lax peer), and
``dot_unstuff(dot_stuff(body)) == ensure_final_newline(body)`` for every body:
:func:`dot_stuff` writes CRLF line endings (RFC 5321 allows no other), and a body
without a final line ending gets one, since the terminator must start a line and the
two cannot be told apart on the wire.  A CRLF body that ends with CRLF round-trips
unchanged.
"""

from __future__ import annotations

from typing import NoReturn

from ..errors import ConfigurationError, FrameTooLarge, IncompleteFrame, LineTooLong, StateError
from ._sentinels import END_OF_BODY, NEED_DATA, EndOfBody, NeedData

__all__ = ["DotBodyReader", "dot_stuff", "ensure_final_newline"]

_DOT_END = (b".\r\n", b".\n")


class DotBodyReader:
    """The body mode of :class:`~asyncnet.protocols._lines.LineBuffer` (a mixin: the
    buffer, its offsets and its poisoning are the line buffer's)."""

    __slots__ = ("_body_done", "_body_dots", "_body_limit", "_body_scan", "_body_size", "_in_body")

    _buf: bytes | bytearray
    _start: int
    _eof: bool
    _max: int
    _delim: bytes
    _error: LineTooLong | FrameTooLarge | None
    peer: object

    def _consume(self, end: int) -> None:
        raise NotImplementedError

    def _poison(self, error: LineTooLong | FrameTooLarge) -> NoReturn:
        raise NotImplementedError

    def start_dot_body(self, max_body_size: int | None = None) -> None:
        """Read a dot-terminated body next (bytes already buffered count as its start).

        ``max_body_size`` bounds the unstuffed body; a larger one raises
        :class:`~asyncnet.errors.FrameTooLarge` and poisons the buffer.
        """
        if self._error is not None:
            raise self._error
        if self._delim != b"\n":
            raise ConfigurationError("dot-terminated bodies need the b'\\n' delimiter")
        self._in_body = True
        self._body_done = False
        self._body_limit = max_body_size
        self._body_size = 0
        self._body_scan = self._start
        self._body_dots = 0

    def next_body(self) -> bytes | NeedData:
        """Return the whole unstuffed body once its terminator arrived, else ``NEED_DATA``.

        Raises :class:`~asyncnet.errors.IncompleteFrame` if input ended first.
        """
        if not self._in_body:
            raise StateError("next_body() without start_dot_body()")
        found, end = self._find_terminator()
        self._check_body_size(self._body_scan - self._start - self._body_dots)
        if found < 0:
            return NEED_DATA
        body = self._unstuff(self._start, found)
        self._consume(end)
        self._in_body = False
        return body

    def next_body_chunk(self) -> bytes | NeedData | EndOfBody:
        """Return the body lines complete so far (unstuffed), ``NEED_DATA`` or ``END_OF_BODY``.

        For bodies too big to hold in memory at once: call it after every :meth:`feed`
        and write each chunk out.  ``max_body_size`` counts every chunk handed out.
        """
        if not self._in_body:
            raise StateError("next_body_chunk() without start_dot_body()")
        if self._body_done:
            self._in_body = self._body_done = False
            return END_OF_BODY
        found, end = self._find_terminator()
        stop = found if found >= 0 else self._body_scan
        chunk = self._unstuff(self._start, stop)
        self._body_size += len(chunk)
        self._check_body_size(self._body_size)
        self._consume(end if found >= 0 else stop)
        self._body_scan = self._start
        self._body_dots = 0
        if found >= 0:
            if chunk:
                self._body_done = True  # END_OF_BODY on the next call
                return chunk
            self._in_body = False
            return END_OF_BODY
        return chunk if chunk else NEED_DATA

    def _find_terminator(self) -> tuple[int, int]:
        """(offset of the terminator line or -1, offset just past it or -1)."""
        if self._error is not None:
            raise self._error
        buf, pos = self._buf, self._body_scan
        limit = self._max + 1  # a body line may carry its \r too
        find = buf.find
        while True:
            i = find(b"\n", pos)
            if i < 0:
                self._body_scan = pos
                if len(buf) - pos > limit:
                    self._poison(LineTooLong(self._max, len(buf) - pos, self.peer))
                if self._eof:
                    raise IncompleteFrame(len(buf) - self._start, None, self.peer)
                return -1, -1
            if i - pos > limit:
                self._poison(LineTooLong(self._max, i - pos, self.peer))
            if buf[pos] == 0x2E:  # "."
                if i - pos <= 2 and buf[pos : i + 1] in _DOT_END:
                    self._body_scan = pos
                    return pos, i + 1
                self._body_dots += 1
            pos = i + 1

    def _unstuff(self, start: int, stop: int) -> bytes:
        view = bytes(self._buf[start:stop])
        if b"\n." not in view and not view.startswith(b"."):
            return view
        # Split on \n only: a stray \r inside a line is data, not a line break.
        lines = view.split(b"\n")
        body = b"\n".join(line[1:] if line.startswith(b".") else line for line in lines)
        return body

    def _check_body_size(self, size: int) -> None:
        if self._body_limit is not None and size > self._body_limit:
            self._poison(FrameTooLarge(size, self._body_limit, self.peer))


def dot_stuff(body: bytes) -> bytes:
    """Return ``body`` as it goes on the wire: CRLF line endings, leading dots doubled,
    and the ``.\\r\\n`` terminator (a body without a final line ending gets one)."""
    out = bytearray()
    for line in _lines(body):
        if line.startswith(b"."):
            out += b"."
        out += line
        out += b"\r\n"
    out += b".\r\n"
    return bytes(out)


def _lines(body: bytes) -> list[bytes]:
    """The lines of ``body`` without their ``\\r\\n`` or ``\\n`` (a bare ``\\r`` is data)."""
    lines = body.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the body ended with a line ending
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def ensure_final_newline(body: bytes) -> bytes:
    """``body`` with CRLF line endings and a final CRLF: what :func:`dot_stuff` sends."""
    return b"".join(line + b"\r\n" for line in _lines(body))
