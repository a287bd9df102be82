"""A framed client: the client half of :class:`~asyncnet.servers._framed.FramedHandler`.

Frames are delimited lines, fixed byte counts or length-prefixed messages, and the
terminator can change between frames, exactly as on the server side.  Every
operation is bounded in time:

* ``connect_timeout`` (default: ``timeout``) bounds the TCP connect;
* ``timeout`` bounds each read or write (a whole frame, however it trickles in);
* :meth:`FramedClient.request` takes a ``timeout`` for send-and-reply together, and
  :meth:`FramedClient.deadline` bounds any sequence of operations as one.

Each limit raises :class:`~asyncnet.errors.OperationTimeout` naming the server and
the phase ("connect", "read", "send", "request", or the phase you give).
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from typing import Any, Self

from .._boundary import network_errors
from ..protocols import (
    NEED_DATA,
    Framer,
    Terminator,
    TerminatorLike,
    as_terminator,
    encode_frame,
)
from ._stream import DEFAULT, StreamClient, Timeout, open_stream

__all__ = ["FramedClient"]


class FramedClient(StreamClient):
    """A connection that sends and receives frames; use :meth:`connect`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Any,
        framer: Framer,
        *,
        timeout: float | None,
        read_size: int,
    ) -> None:
        super().__init__(reader, writer, peer, timeout=timeout)
        self.framer = framer
        self.read_size = read_size
        self._send_terminator: TerminatorLike = framer.terminator
        self._input_ended = False

    @classmethod
    async def connect(
        cls,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        path: str | None = None,
        terminator: TerminatorLike = b"\r\n",
        max_frame_size: int = 64 * 1024,
        keep_delimiter: bool = False,
        ssl: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float | None = 10.0,
        connect_timeout: Timeout = DEFAULT,
        read_size: int = 64 * 1024,
    ) -> Self:
        """Connect to ``host:port`` (or the Unix socket ``path``), framing with ``terminator``."""
        as_terminator(terminator)  # refuse a bad terminator before connecting
        reader, writer, peer = await open_stream(
            host,
            port,
            path=path,
            ssl=ssl,
            server_hostname=server_hostname,
            timeout=timeout if connect_timeout is DEFAULT else connect_timeout,
        )
        framer = Framer(
            terminator, max_frame_size=max_frame_size, keep_delimiter=keep_delimiter, peer=peer
        )
        return cls(reader, writer, peer, framer, timeout=timeout, read_size=read_size)

    @property
    def terminator(self) -> Terminator:
        """The terminator that will end the next frame read."""
        return self.framer.terminator

    def set_terminator(self, terminator: TerminatorLike) -> None:
        """Read the next frames with ``terminator`` (buffered bytes are re-parsed under it)."""
        self.framer.set_terminator(terminator)

    async def send_frame(
        self,
        frame: bytes,
        terminator: TerminatorLike | None = None,
        *,
        timeout: Timeout = DEFAULT,
    ) -> None:
        """Send ``frame`` framed by ``terminator`` (default: the one given to :meth:`connect`)."""
        data = encode_frame(self._send_terminator if terminator is None else terminator, frame)
        async with network_errors(self.peer, "send", self._limit(timeout)):
            self.writer.write(data)
            await self.writer.drain()

    async def read_frame(self, *, timeout: Timeout = DEFAULT) -> bytes | None:
        """Return the next frame, or ``None`` when the server closed between frames.

        :class:`~asyncnet.errors.IncompleteFrame` if it closed in the middle of one,
        :class:`~asyncnet.errors.FrameTooLarge` beyond ``max_frame_size``.
        """
        framer = self.framer
        async with network_errors(self.peer, "read", self._limit(timeout)):
            while True:
                frame = framer.next_frame()
                if frame is not NEED_DATA:
                    return frame
                if self._input_ended:
                    return None
                data = await self.reader.read(self.read_size)
                if not data:
                    self._input_ended = True
                    framer.feed_eof()
                    continue
                framer.feed(data)

    async def request(
        self,
        frame: bytes,
        terminator: TerminatorLike | None = None,
        *,
        timeout: Timeout = DEFAULT,
    ) -> bytes:
        """Send a frame and return the reply frame; ``timeout`` bounds both together."""
        async with self.deadline(self._limit(timeout), "request"):
            await self.send_frame(frame, terminator, timeout=None)
            reply = await self.read_frame(timeout=None)
        if reply is None:
            raise self._no_reply()
        return reply
