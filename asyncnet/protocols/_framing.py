"""Sans-IO message framing: the asyncio-era replacement for asynchat's ``set_terminator``.

A :class:`Framer` is fed bytes as they arrive (:meth:`Framer.feed`) and hands back
complete frames one at a time (:meth:`Framer.next_frame`).  It never touches a
socket and never imports asyncio, so the same object serves a stream protocol's
``data_received``, a blocking ``recv`` loop, or a unit test that feeds it byte
strings.  What ends a frame is the *terminator*, which can be changed between
frames:

* :class:`Delimiter` -- the frame ends at a byte sequence such as ``b"\\r\\n"``;
* :class:`ByteCount` -- the frame is exactly *n* bytes;
* :class:`LengthPrefix` -- the frame is preceded by its length, an unsigned
  integer in network byte order (``"!B"``, ``"!H"``, ``"!I"`` or ``"!Q"``).

Mapping from asynchat
---------------------
==========================================  ====================================================
asynchat                                    asyncnet
==========================================  ====================================================
``set_terminator(b"\\r\\n")``               ``framer.set_terminator(Delimiter(b"\\r\\n"))``
                                            (or the shorthand ``set_terminator(b"\\r\\n")``)
``set_terminator(n)``                       ``framer.set_terminator(ByteCount(n))``
                                            (or the shorthand ``set_terminator(n)``)
``collect_incoming_data`` +                 ``frame = framer.next_frame()`` returning the
``found_terminator``                        complete frame, or :data:`NEED_DATA`
``set_terminator(None)`` (read to close)    not provided: read the transport directly
(no equivalent)                             :class:`LengthPrefix` for binary protocols
==========================================  ====================================================

Two deliberate differences: a :class:`ByteCount` terminator stays in force for
every following frame until it is changed (asynchat silently dropped back to
"no terminator" after one count), and every terminator is bounded by
``max_frame_size`` (asynchat's input buffer grew without limit).

Design
------
* **One frame at a time.**  :meth:`Framer.next_frame` returns a single frame so a
  caller can switch terminator between frames -- read header lines with
  ``Delimiter(b"\\r\\n")``, switch to ``ByteCount(content_length)`` for the body,
  then back to lines.  Bytes already buffered are parsed under whatever
  terminator is in force when the frame is asked for.  :meth:`Framer.frames` is
  a lazy generator over :meth:`Framer.next_frame`, so switching inside a
  ``for frame in framer.frames()`` loop works too.
* **Bounded memory.**  In delimiter mode a buffer holding more than
  ``max_frame_size + len(delimiter) - 1`` bytes with no delimiter raises
  :class:`~asyncnet.errors.FrameTooLarge` (the ``- 1`` lets a frame of exactly
  the maximum size through when a multi-byte delimiter is split across reads,
  e.g. ``b"\\r"`` then ``b"\\n"``).  A complete delimited frame over the limit
  raises too, a length prefix announcing more than the limit raises as soon as
  the prefix is read (before the body arrives), and a :class:`ByteCount` over
  the limit is refused when it is set.  :meth:`Framer.feed` checks the frame
  currently being assembled, so the error surfaces on the read that crossed the
  limit even if the caller does not drain frames after every read.
* **No resynchronisation.**  After :class:`~asyncnet.errors.FrameTooLarge` the
  framer is poisoned: the buffer is released and every later :meth:`Framer.feed`,
  :meth:`Framer.next_frame` and :meth:`Framer.feed_eof` raises the same error
  again.  The tail of an over-long line must never come back as a fresh frame
  (that is how commands get smuggled past a front end).
* **Linear time.**  The buffer is a :class:`bytearray` consumed through an
  offset and compacted only when the consumed part is at least as large as the
  rest, so draining many small frames costs O(total bytes), not O(n**2).  The
  delimiter search resumes where the previous one stopped
  (``len(buffer) - len(delimiter) + 1``) instead of rescanning the frame on
  every read.
* **End of stream.**  :meth:`Framer.feed_eof` raises
  :class:`~asyncnet.errors.IncompleteFrame` if a partial frame is buffered, with
  ``missing`` set to the number of bytes still needed (``None`` for a missing
  delimiter; for a length prefix that is itself incomplete, the number of prefix
  bytes missing).

Frames are returned as :class:`bytes`, without the length prefix and without the
delimiter (unless ``keep_delimiter=True``).  ``max_frame_size`` counts payload
bytes only: neither the delimiter nor the prefix counts against it.

Example::

    framer = Framer(Delimiter(b"\\r\\n"), max_frame_size=8192)
    framer.feed(b"Content-Length: 5\\r\\n\\r\\nhello")
    framer.next_frame()                  # b"Content-Length: 5"
    framer.next_frame()                  # b"" (end of headers)
    framer.set_terminator(ByteCount(5))
    framer.next_frame()                  # b"hello"
    framer.next_frame() is NEED_DATA     # True

The three terminators are one job: they share the :class:`Framer`'s buffer, its limit
rule and its poisoned state, and a caller switches between them frame by frame.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, NoReturn, TypeAlias

from asyncnet.errors import (
    ConfigurationError,
    FrameTooLarge,
    IncompleteFrame,
    LineTooLong,
    LocalProtocolError,
)

from ._lines import NEED_DATA, LineBuffer, NeedData

__all__ = [
    "NEED_DATA",
    "ByteCount",
    "Delimiter",
    "Framer",
    "LengthPrefix",
    "NeedData",
    "Terminator",
    "TerminatorLike",
    "as_terminator",
    "encode_frame",
]

_BytesLike: TypeAlias = bytes | bytearray | memoryview

# Network byte order only: "!" is big-endian with no padding.
_PREFIX_FORMATS: Final[dict[str, struct.Struct]] = {
    fmt: struct.Struct(fmt) for fmt in ("!B", "!H", "!I", "!Q")
}


@dataclass(frozen=True, slots=True)
class Delimiter:
    """Frames end at ``delimiter``, a non-empty byte string such as ``b"\\r\\n"``."""

    delimiter: bytes

    def __post_init__(self) -> None:
        value: object = self.delimiter
        if isinstance(value, (bytearray, memoryview)):
            value = bytes(value)
            object.__setattr__(self, "delimiter", value)
        if not isinstance(value, bytes):
            raise ConfigurationError(
                f"delimiter must be bytes, not {type(value).__name__}: {value!r}"
            )
        if not value:
            raise ConfigurationError("delimiter must not be empty")

    def encode(self, frame: _BytesLike) -> bytes:
        """Return ``frame`` followed by the delimiter; refuse a frame the peer would split."""
        data = bytes(frame)
        delim = self.delimiter
        # The receiver stops at the *first* occurrence, which may straddle the
        # end of the frame and the start of the delimiter (b"ab" + b"aba").
        if delim in data + delim[:-1]:
            raise LocalProtocolError(f"frame contains the delimiter {delim!r}")
        return data + delim


@dataclass(frozen=True, slots=True)
class ByteCount:
    """Every frame is exactly ``size`` bytes (``size >= 0``); asynchat's ``set_terminator(n)``."""

    size: int

    def __post_init__(self) -> None:
        size: object = self.size
        if isinstance(size, bool) or not isinstance(size, int):
            raise ConfigurationError(f"byte count must be an int, not {type(size).__name__}")
        if size < 0:
            raise ConfigurationError(f"byte count must be >= 0, got {size}")

    def encode(self, frame: _BytesLike) -> bytes:
        """Return ``frame`` unchanged after checking that it is exactly ``size`` bytes."""
        data = bytes(frame)
        if len(data) != self.size:
            raise LocalProtocolError(f"frame is {len(data)} bytes, expected exactly {self.size}")
        return data


@dataclass(frozen=True, slots=True)
class LengthPrefix:
    """Every frame is preceded by its length as an unsigned int in network byte order."""

    format: str = "!I"

    def __post_init__(self) -> None:
        if self.format not in _PREFIX_FORMATS:
            allowed = ", ".join(repr(f) for f in _PREFIX_FORMATS)
            raise ConfigurationError(
                f"length prefix format must be one of {allowed} "
                f"(network byte order), got {self.format!r}"
            )

    @property
    def prefix_size(self) -> int:
        """Number of bytes the length prefix itself occupies."""
        return _PREFIX_FORMATS[self.format].size

    @property
    def max_length(self) -> int:
        """Largest frame length the prefix can express."""
        return (1 << (8 * self.prefix_size)) - 1

    def encode(self, frame: _BytesLike) -> bytes:
        """Return the length prefix followed by ``frame``."""
        data = bytes(frame)
        if len(data) > self.max_length:
            raise LocalProtocolError(
                f"frame is {len(data)} bytes, more than a {self.format!r} prefix can "
                f"express ({self.max_length})"
            )
        return _PREFIX_FORMATS[self.format].pack(len(data)) + data


Terminator: TypeAlias = Delimiter | ByteCount | LengthPrefix
"""What ends a frame: one of :class:`Delimiter`, :class:`ByteCount`, :class:`LengthPrefix`."""

TerminatorLike: TypeAlias = Terminator | bytes | int
"""A :data:`Terminator`, or asynchat's shorthand: ``bytes`` for a delimiter, ``int`` for a count."""


def as_terminator(value: object) -> Terminator:
    """Normalise asynchat-style shorthand (``bytes`` / ``int``) to a terminator object."""
    if isinstance(value, (Delimiter, ByteCount, LengthPrefix)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return Delimiter(bytes(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return ByteCount(value)
    if isinstance(value, str):
        raise ConfigurationError(f"terminator must be bytes, not str: {value!r}")
    raise ConfigurationError(
        "terminator must be Delimiter, ByteCount, LengthPrefix, bytes or int, "
        f"not {type(value).__name__}"
    )


def encode_frame(terminator: TerminatorLike, frame: _BytesLike) -> bytes:
    """Return ``frame`` as it goes on the wire under ``terminator`` (shorthand accepted)."""
    return as_terminator(terminator).encode(frame)


class Framer:
    """Split a byte stream into frames; feed it bytes, ask it for frames."""

    __slots__ = (
        "_eof",
        "_error",
        "_generation",
        "_keep",
        "_lines",
        "_max",
        "_terminator",
        "peer",
    )

    def __init__(
        self,
        terminator: TerminatorLike,
        *,
        max_frame_size: int = 65536,
        keep_delimiter: bool = False,
        peer: object = None,
    ) -> None:
        if (
            isinstance(max_frame_size, bool)
            or not isinstance(max_frame_size, int)
            or max_frame_size < 1
        ):
            raise ConfigurationError(
                f"max_frame_size must be a positive int, got {max_frame_size!r}"
            )
        self._max = max_frame_size
        self._keep = bool(keep_delimiter)
        self.peer = peer
        """The peer's address, named in the errors this framer raises."""
        # The bytes, for every terminator; delimited frames are its lines (same limits,
        # same no-resync rule as every line protocol in asyncnet).
        self._lines = LineBuffer(max_frame_size, delimiter=b"\n", strip_cr=False, peer=peer)
        self._eof = False
        self._error: FrameTooLarge | None = None
        self._generation = 0  # bumped by set_terminator (see frames())
        self._terminator: Terminator = ByteCount(0)
        self.set_terminator(terminator)

    # -- configuration ---------------------------------------------------------

    @property
    def terminator(self) -> Terminator:
        """The terminator that will end the next frame."""
        return self._terminator

    def set_terminator(self, terminator: TerminatorLike) -> None:
        """Use ``terminator`` from the next frame on; buffered bytes are parsed under it."""
        new = as_terminator(terminator)
        if isinstance(new, ByteCount) and new.size > self._max:
            raise ConfigurationError(f"byte count {new.size} exceeds max_frame_size {self._max}")
        self._terminator = new
        try:
            self._lines.set_delimiter(new.delimiter if isinstance(new, Delimiter) else None)
        except LineTooLong as exc:
            self._poison(exc.received)
        self._generation += 1

    @property
    def max_frame_size(self) -> int:
        """Largest payload accepted, not counting the delimiter or the length prefix."""
        return self._max

    @property
    def keep_delimiter(self) -> bool:
        """Whether delimited frames are returned with their delimiter."""
        return self._keep

    @property
    def buffered(self) -> int:
        """Number of bytes fed but not yet returned as (part of) a frame."""
        return self._lines.pending

    # -- input -------------------------------------------------------------------

    def feed(self, data: _BytesLike) -> None:
        """Append received bytes; raise :class:`FrameTooLarge` if the current frame is over."""
        self._raise_if_poisoned()
        if self._eof:
            raise ConfigurationError("feed() called after feed_eof()")
        if not data:
            return
        delimited = isinstance(self._terminator, Delimiter)
        try:
            # feed() enforces the limit on a delimited frame being assembled; a frame
            # completed by these bytes is checked too (earlier ones were, when completed)
            if self._lines.feed(data) and delimited:
                self._lines.check_next_line()
        except LineTooLong as exc:
            self._poison(exc.received)
        if not delimited:
            self._locate()  # a length prefix over the limit is refused as soon as it is read

    def feed_eof(self) -> None:
        """Signal end of stream; raise :class:`IncompleteFrame` if a partial frame is buffered."""
        self._raise_if_poisoned()
        self._eof = True  # not the LineBuffer's: a final frame without delimiter is incomplete
        if self.buffered and self._locate() is None:
            raise self._incomplete()

    # -- output ------------------------------------------------------------------

    def next_frame(self) -> bytes | NeedData:
        """Return the next complete frame, or :data:`NEED_DATA` if none is buffered."""
        self._raise_if_poisoned()
        terminator = self._terminator
        if isinstance(terminator, Delimiter):
            try:
                line = self._lines.next_line()
            except LineTooLong as exc:
                self._poison(exc.received)
            if line is NEED_DATA:
                if self._eof and self.buffered:
                    raise self._incomplete()
                return NEED_DATA
            assert isinstance(line, bytes)
            return line + terminator.delimiter if self._keep else line
        span = self._locate()
        if span is None:
            if self._eof and self.buffered:
                raise self._incomplete()
            return NEED_DATA
        skip, size = span
        lines = self._lines
        if skip:
            lines.take_bytes(skip)
        return lines.take_bytes(size)

    def frames(self) -> Iterator[bytes]:
        """Yield every complete frame buffered now (lazily, via :meth:`next_frame`)."""
        while True:
            frame = self.next_frame()
            if frame is NEED_DATA:
                return
            generation = self._generation
            yield frame
            # A zero-byte ByteCount consumes nothing: stop instead of yielding b""
            # forever, unless the caller changed the terminator meanwhile.
            terminator = self._terminator
            if (
                generation == self._generation
                and isinstance(terminator, ByteCount)
                and terminator.size == 0
            ):
                return

    def __repr__(self) -> str:
        state = " poisoned" if self._error is not None else (" eof" if self._eof else "")
        return (
            f"<Framer {self._terminator!r} buffered={self.buffered} "
            f"max_frame_size={self._max}{state}>"
        )

    # -- internals ---------------------------------------------------------------

    def _locate(self) -> tuple[int, int] | None:
        """For a counted frame: ``(prefix bytes to skip, frame size)`` once it is all
        buffered, else None.  Raises (and poisons) on a length prefix over the limit.
        (Delimited frames are the line buffer's business.)"""
        terminator = self._terminator
        buffered = self._lines.pending
        if isinstance(terminator, Delimiter):
            # Only feed_eof() asks: is a complete frame buffered?
            delim = terminator.delimiter
            return (0, 0) if delim in self._lines.peek(buffered) else None
        if isinstance(terminator, ByteCount):
            return (0, terminator.size) if terminator.size <= buffered else None
        prefix = _PREFIX_FORMATS[terminator.format]
        if buffered < prefix.size:
            return None
        (length,) = prefix.unpack(self._lines.peek(prefix.size))
        if length > self._max:
            self._poison(length)
        return (prefix.size, length) if prefix.size + length <= buffered else None

    def _poison(self, size: int) -> NoReturn:
        """Record a FrameTooLarge, drop the buffer, and raise."""
        self._error = FrameTooLarge(size, self._max, self.peer)
        self._lines = LineBuffer(self._max, strip_cr=False, peer=self.peer)  # the bytes go
        raise self._error

    def _raise_if_poisoned(self) -> None:
        error = self._error
        if error is not None:
            # A fresh instance each time, so tracebacks do not pile up on one object.
            raise FrameTooLarge(error.size, error.limit, error.peer)

    def _incomplete(self) -> IncompleteFrame:
        """Describe the partial frame left in the buffer at end of stream."""
        received = self.buffered
        terminator = self._terminator
        missing: int | None
        if isinstance(terminator, Delimiter):
            missing = None
        elif isinstance(terminator, ByteCount):
            missing = terminator.size - received
        else:
            prefix = _PREFIX_FORMATS[terminator.format]
            if received < prefix.size:
                missing = prefix.size - received
            else:
                (length,) = prefix.unpack(self._lines.peek(prefix.size))
                missing = prefix.size + length - received
        return IncompleteFrame(received, missing, self.peer)
