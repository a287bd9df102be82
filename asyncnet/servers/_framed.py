"""The asynchat successor for servers: a stream handler that reads *frames*.

asynchat let a channel say ``set_terminator(b"\\r\\n")`` to be called back with each
line, or ``set_terminator(n)`` for the next *n* bytes, and switch between the two as
a protocol went along (headers, then a body).  :class:`FramedHandler` does the same
with a coroutine instead of callbacks::

    class Upload(FramedHandler):
        terminator = b"\\r\\n"                       # start with header lines

        async def handle(self) -> None:
            length = 0
            while (line := await self.read_frame()):  # b"" = blank line = end of headers
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            self.set_terminator(ByteCount(length))    # then exactly `length` bytes
            body = await self.read_frame()
            ...

The parsing is the sans-IO :class:`~asyncnet.protocols._framing.Framer`; this module
only moves bytes from the connection's :class:`asyncio.StreamReader` into it, in
chunks (``reader.read(n)``, never ``readline()``), and adds the server-side policy:

* a frame larger than ``max_frame_size`` (a long line, a length prefix announcing
  too much) raises :class:`~asyncnet.errors.FrameTooLarge` as soon as it is seen;
* end of input in the middle of a frame raises
  :class:`~asyncnet.errors.IncompleteFrame` saying how many bytes were missing;
* a frame that is started but not finished within ``frame_timeout`` seconds
  (default: the server's ``line_timeout``) raises :class:`FrameTimeout`, so a
  client dribbling a byte at a time cannot pin the connection.

All three are :class:`~asyncnet.errors.PeerProtocolError`: if ``handle()`` lets one
escape, the server logs it with the peer's address, counts it in
``stats.protocol_errors`` and closes that connection; the server and the other
connections carry on.  Catch them in ``handle()`` to send an error reply first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import ClassVar

from ..errors import FrameTimeout, FrameTooLarge
from ..protocols import (
    NEED_DATA,
    ByteCount,
    Delimiter,
    Framer,
    Terminator,
    TerminatorLike,
    encode_frame,
)
from ._handlers import StreamHandler

__all__ = ["FrameTimeout", "FramedHandler", "encode_frame"]  # the last two re-exported


class FramedHandler(StreamHandler):
    """Stream handler whose ``handle()`` reads frames: ``await self.read_frame()``.

    Settings (class attributes, override in a subclass):

    * ``terminator`` -- what ends a frame when the connection opens: ``bytes`` (a
      delimiter), an ``int`` (a byte count), or a ``Delimiter`` / ``ByteCount`` /
      ``LengthPrefix`` object.  :meth:`set_terminator` changes it mid-connection.
    * ``max_frame_size`` -- the largest frame accepted, not counting its delimiter or
      length prefix (default 64 KiB).  Memory per connection stays around
      ``max_frame_size + read_size``.
    * ``keep_delimiter`` -- return delimited frames with their delimiter.
    * ``frame_timeout`` -- seconds a started frame may take to complete; ``None``
      (the default) uses the server's ``line_timeout``.
    * ``read_size`` -- bytes asked of the stream per read.

    Once ``read_frame()`` has been used, read only through this class
    (:meth:`read_frame`, :meth:`frames`, :meth:`readline`): the framer holds bytes
    that ``self.reader`` has already handed over.
    """

    terminator: ClassVar[TerminatorLike] = b"\r\n"
    max_frame_size: ClassVar[int] = 64 * 1024
    keep_delimiter: ClassVar[bool] = False
    frame_timeout: ClassVar[float | None] = None
    read_size: ClassVar[int] = 64 * 1024

    _framer: Framer
    _input_ended: bool = False

    @property
    def framer(self) -> Framer:
        """The connection's sans-IO framer (created on first use)."""
        try:
            return self._framer
        except AttributeError:
            cls = type(self)
            self._framer = Framer(
                cls.terminator,
                max_frame_size=cls.max_frame_size,
                keep_delimiter=cls.keep_delimiter,
                peer=getattr(self, "peer", None),
            )
            return self._framer

    @property
    def current_terminator(self) -> Terminator:
        """The terminator that will end the next frame."""
        return self.framer.terminator

    def set_terminator(self, terminator: TerminatorLike) -> None:
        """End the next frames with ``terminator`` (asynchat's ``set_terminator``).

        Bytes already received are parsed under the new terminator, so a protocol
        can read headers line by line and then ``set_terminator(ByteCount(n))`` for
        a body that arrived in the same packet.  A byte count over
        ``max_frame_size`` raises :class:`~asyncnet.errors.FrameTooLarge`: such a
        count normally comes from the peer (a ``Content-Length``).
        """
        framer = self.framer
        size = terminator.size if isinstance(terminator, ByteCount) else terminator
        if type(size) is int and size > framer.max_frame_size:
            raise FrameTooLarge(size, framer.max_frame_size, self.peer)
        framer.set_terminator(terminator)

    async def read_frame(self) -> bytes | None:
        """Return the next frame, or ``None`` at a clean end of input.

        ``None`` also when the server is shutting down, even mid-frame.

        Raises :class:`~asyncnet.errors.FrameTooLarge`,
        :class:`~asyncnet.errors.IncompleteFrame` or :class:`FrameTimeout` when the
        peer breaks the framing (see the module documentation).
        """
        framer = self.framer
        loop = self.server.loop
        timeout = self._frame_timeout()
        started: float | None = None
        while True:
            frame = framer.next_frame()
            if frame is not NEED_DATA:
                return frame
            if self._input_ended:
                return None
            if started is None and framer.buffered and timeout is not None:
                started = loop.time()
            if started is None or timeout is None:
                data = await self.reader.read(self.read_size)
            else:
                remaining = started + timeout - loop.time()
                try:
                    if remaining <= 0:
                        raise TimeoutError
                    async with asyncio.timeout(remaining):
                        data = await self.reader.read(self.read_size)
                except TimeoutError:
                    raise FrameTimeout(self.peer, timeout, framer.buffered) from None
            if not data:
                self._input_ended = True
                if self._server_closing():
                    return None  # our own shutdown ended the input: not the peer's fault
                framer.feed_eof()  # IncompleteFrame if a partial frame is buffered
                continue
            if started is None and timeout is not None:
                started = loop.time()
            framer.feed(data)

    async def frames(self) -> AsyncIterator[bytes]:
        """Yield frames until the end of input (the terminator may change in between)."""
        while (frame := await self.read_frame()) is not None:
            yield frame

    async def readline(self, delimiter: bytes = b"\n") -> bytes:
        """Read one line *including* ``delimiter`` through the framer; ``b""`` at EOF.

        Unlike :meth:`StreamHandler.readline`, a final line without its delimiter
        raises :class:`~asyncnet.errors.IncompleteFrame`, and an over-long line
        raises :class:`~asyncnet.errors.FrameTooLarge`.  The terminator in force
        before the call is restored afterwards.
        """
        framer = self.framer
        previous = framer.terminator
        framer.set_terminator(Delimiter(delimiter))
        try:
            line = await self.read_frame()
        finally:
            framer.set_terminator(previous)
        if line is None:
            return b""
        return line if framer.keep_delimiter else line + delimiter

    async def send_frame(self, frame: bytes, terminator: TerminatorLike | None = None) -> None:
        """Send ``frame`` framed by ``terminator`` (default: the class's ``terminator``).

        A delimited frame that contains its delimiter, or a frame a length prefix
        cannot express, raises :class:`~asyncnet.errors.LocalProtocolError` before
        anything is written.  Waits (``drain()``) while the peer is not reading, up
        to the server's write timeout.
        """
        encoded = encode_frame(type(self).terminator if terminator is None else terminator, frame)
        self.writer.write(encoded)
        await self.writer.drain()

    async def write_frame(self, frame: bytes, terminator: TerminatorLike | None = None) -> None:
        """The former name of :meth:`send_frame` (asyncnet's sending verbs are ``send_*``)."""
        await self.send_frame(frame, terminator)

    def _server_closing(self) -> bool:
        # The server's graceful shutdown feeds EOF to the reader; a frame cut short
        # by that is not a protocol error.
        return self.closing

    def _frame_timeout(self) -> float | None:
        timeout = type(self).frame_timeout
        return self.server.line_timeout if timeout is None else timeout
