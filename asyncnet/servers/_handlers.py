"""Handler base classes: the asyncio successors of SocketServer's request handlers.

As with ``socketserver.BaseRequestHandler``, you subclass one of these, override one
method, and hand the class to a server; the server makes one instance per
connection (stream servers) and keeps per-connection state on it.

* :class:`LineHandler` -- override ``handle_line(line)``; its return value is the
  reply.  The fast path: no task and no StreamReader per line.
* :class:`StreamHandler` -- override ``async handle()`` and use ``self.reader`` /
  ``self.writer`` (asyncio streams), for protocols that want to drive the I/O.
* :class:`DatagramHandler` -- override ``handle(data, addr)``; its return value is
  sent back to ``addr``.  One instance serves every datagram of a server.

``setup()`` and ``finish()`` run at the start and end of each connection, as in
SocketServer.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import LineTooLong
from ..protocols import EOF, NEED_DATA, LineBuffer

if TYPE_CHECKING:
    from ._connection import LineConnection, StreamConnection
    from ._datagram import DatagramServer
    from ._stream import StreamServer

__all__ = ["BaseHandler", "DatagramHandler", "LineHandler", "StreamHandler"]


class BaseHandler:
    """What every connection handler has: the server, the peer and two hooks."""

    server: StreamServer
    """The server that accepted this connection."""
    transport: asyncio.Transport
    """The connection's transport (for ``get_extra_info()``: socket, TLS details...)."""

    # A property, not __getattr__: a class with __getattr__ loses CPython's fast
    # attribute and method lookups for every other name too (handle_line included).
    @property
    def peer(self) -> Any:
        """The client's address: ``(host, port)`` for TCP, a path or ``''`` for Unix sockets.

        Asked of the transport when first read, then kept (assigning it works as usual):
        on uvloop the answer costs a socket object per connection, ~160 bytes that an idle
        connection nobody logs should not pay."""
        state = self.__dict__
        try:
            return state["peer"]
        except KeyError:
            pass
        transport = state.get("transport")
        if transport is None:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute 'peer'", name="peer", obj=self
            )
        state["peer"] = peer = transport.get_extra_info("peername")
        return peer

    @peer.setter
    def peer(self, value: Any) -> None:
        self.__dict__["peer"] = value

    def setup(self) -> None:
        """Called when the connection opens, before any data is handled."""

    def finish(self) -> None:
        """Called once when the connection has closed, whatever the reason."""


class LineHandler(BaseHandler):
    """Line protocol handler: ``handle_line(line)`` is called once per line.

    ``handle_line`` may be a plain method or ``async def``; it returns the reply
    (a ``str``, written followed by the reply delimiter) or ``None`` for no reply.
    Lines are handled strictly in order: while a coroutine waits, the connection
    stops reading, so replies can never overtake each other.

    Settings (class attributes, override in a subclass):

    * ``encoding`` / ``errors`` -- how lines are decoded and replies encoded.  With
      the default ``errors = "strict"`` a line that is not valid UTF-8 is a protocol
      error: the client gets an error reply and the connection is closed.  Set
      ``errors = "replace"`` to receive U+FFFD instead.
    * ``delimiter`` -- ends each line (default ``b"\\n"``; a ``\\r`` before it is
      stripped when ``strip_cr`` is true, so ``\\r\\n`` clients work too).
    * ``reply_delimiter`` -- appended to each reply (default: ``delimiter``).
    * ``max_line_length`` -- bytes allowed before a delimiter.  An over-long line
      gets ``error_reply`` and a closed connection; its tail is never handled as
      a line of its own.
    * ``run_in_task`` -- by default a coroutine runs eagerly and becomes a task only
      if it suspends; code before its first ``await`` therefore runs outside any task.
      Set to ``True`` if ``handle_line`` needs ``asyncio.timeout()`` or
      ``asyncio.current_task()`` before its first ``await``.

    At end of input (the client half-closes or disconnects) a final line without
    delimiter is still handled.
    """

    encoding: ClassVar[str] = "utf-8"
    errors: ClassVar[str] = "strict"
    delimiter: ClassVar[bytes] = b"\n"
    reply_delimiter: ClassVar[bytes | None] = None
    strip_cr: ClassVar[bool] = True
    max_line_length: ClassVar[int] = 64 * 1024
    run_in_task: ClassVar[bool] = False
    lines_per_batch: ClassVar[int] = 64
    """Lines handled before the connection lets other connections run (fairness)."""
    error_reply: ClassVar[str | None] = "error: {reason}"
    """Sent before closing a connection for a protocol error; ``None`` sends nothing."""

    _connection: LineConnection

    def greeting(self) -> str | None:
        """Return a line to send as soon as the client connects (default: nothing)."""
        return None

    def handle_line(self, line: str) -> str | Awaitable[str | None] | None:
        """Handle one line (without its delimiter) and return the reply or ``None``."""
        raise NotImplementedError(f"{type(self).__name__} must define handle_line()")

    def send_line(self, line: str) -> None:
        """Send a line that is not a reply (a broadcast, a notification).

        It is written at once, without waiting for the client to read it; use
        :attr:`write_buffer_size` to notice a client that falls behind.
        """
        self._connection.send_line(line)

    def close(self) -> None:
        """End the session once the current reply (if any) has been written."""
        self._connection.request_close()

    def abort(self, reason: str) -> None:
        """Drop the connection now, discarding unsent output, and log ``reason``.

        For a peer that has stopped reading: :meth:`close` would wait for output to
        drain that never will.
        """
        self._connection.abort_with_reason(reason)

    @property
    def write_buffer_size(self) -> int:
        """Bytes written to this client that the kernel has not taken yet."""
        return self._connection.write_buffer_size

    async def start_tls(
        self,
        context: ssl.SSLContext,
        *,
        handshake_timeout: float | None = None,
    ) -> None:
        """Switch this connection to TLS (STARTTLS, STLS) after the reply that agreed to it.

        Send that reply with :meth:`send_line` first.  Input that arrived before the
        handshake (plaintext a client pipelined behind the command, or a man in the
        middle injected) is discarded, never handled.  Raises ``ssl.SSLError``,
        ``OSError`` or ``TimeoutError`` if the handshake fails; :attr:`transport` is
        the TLS transport afterwards.
        """
        await self._connection.start_tls(context, handshake_timeout=handshake_timeout)

    def line_too_long(self, error: LineTooLong) -> None:
        """Called before an over-long line closes the connection (hook; default: nothing)."""


class StreamHandler(BaseHandler):
    """Stream handler: ``async handle()`` drives the connection with streams.

    ``self.reader`` is an :class:`asyncio.StreamReader` and ``self.writer`` an
    :class:`asyncio.StreamWriter` whose ``drain()`` enforces the server's write
    timeout.  When ``handle()`` returns the connection is closed.  Use
    :meth:`readline` rather than ``reader.readline()``: after an over-long line the
    standard ``readline()`` drops the buffer and returns the line's *tail* as the next
    line, whereas :meth:`readline` raises :class:`~asyncnet.errors.LineTooLong` and the
    connection is closed.  :meth:`readline` splits with a
    :class:`~asyncnet.protocols._lines.LineBuffer`, which may hold bytes after the
    line: once you use it, read raw bytes with :meth:`readexactly`, not ``self.reader``.
    """

    max_line_length: ClassVar[int] = 64 * 1024
    """Stream buffer limit, and the longest line :meth:`readline` accepts."""
    lines_per_batch: ClassVar[int] = 64
    """Lines :meth:`readline` returns from buffered input before it lets other
    connections run (a client pipelining thousands of lines must not hold up the rest)."""
    read_size: ClassVar[int] = 64 * 1024
    """Bytes :meth:`readline` asks of the stream per read."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    _connection: StreamConnection
    _lines: LineBuffer | None = None
    _lines_in_turn: int = 0

    @property
    def closing(self) -> bool:
        """True once the server is shutting down (the reader then sees end of input)."""
        return self._connection.shutting_down

    async def handle(self) -> None:
        """Serve the connection; return (or raise) to close it."""
        raise NotImplementedError(f"{type(self).__name__} must define handle()")

    async def readline(self, delimiter: bytes = b"\n") -> bytes:
        """Read one line including its delimiter; ``b""`` at EOF.

        Raises :class:`~asyncnet.errors.LineTooLong` when no delimiter arrives within
        ``max_line_length`` bytes (and again on every later call: the rest of an
        over-long line is never returned as a line); a final line without delimiter
        is returned as is.
        """
        lines = self._line_buffer(delimiter)
        while True:
            line = lines.next_line()
            if line is NEED_DATA:
                self._lines_in_turn = 0  # reading may wait: other connections get a turn
                await self._fill(lines)
                continue
            if line is EOF:
                return b""
            assert isinstance(line, bytes)
            self._lines_in_turn += 1
            if self._lines_in_turn >= self.lines_per_batch:
                self._lines_in_turn = 0
                await asyncio.sleep(0)  # a batch from buffered input: the loop's turn
            return line if lines.last_line_unterminated else line + delimiter

    async def readexactly(self, n: int) -> bytes:
        """Read exactly ``n`` bytes (after lines read with :meth:`readline`).

        Raises :class:`asyncio.IncompleteReadError` if the input ends first.
        """
        head = self._lines.take_bytes(n) if self._lines is not None else b""
        if len(head) == n:
            return head
        try:
            return head + await self.reader.readexactly(n - len(head))
        except asyncio.IncompleteReadError as exc:
            raise asyncio.IncompleteReadError(head + exc.partial, n) from None

    def _line_buffer(self, delimiter: bytes) -> LineBuffer:
        lines = self._lines
        if lines is not None and lines.delimiter == delimiter:
            return lines
        new = LineBuffer(self.max_line_length, delimiter=delimiter, strip_cr=False, peer=self.peer)
        if lines is not None:  # another delimiter: carry the unread bytes over
            if lines.at_eof:
                new.feed(lines.take_bytes())
                new.feed_eof()
            else:
                new.feed(lines.take_bytes())
        self._lines = new
        return new

    async def _fill(self, lines: LineBuffer) -> None:
        data = await self.reader.read(self.read_size)
        if data:
            lines.feed(data)
        else:
            lines.feed_eof()


class DatagramHandler:
    """Datagram handler: ``handle(data, addr)`` returns the reply or ``None``.

    Unlike SocketServer, one instance serves every datagram the server receives, so
    it may keep state across datagrams; per-datagram state belongs in locals.
    ``handle`` may be ``async def``; it runs eagerly and becomes a task only if it
    suspends (see :class:`LineHandler` on ``run_in_task``).
    """

    server: DatagramServer
    transport: asyncio.DatagramTransport
    run_in_task: ClassVar[bool] = False

    def setup(self) -> None:
        """Called once when the server has bound its socket."""

    def finish(self) -> None:
        """Called once when the server has closed."""

    def handle(self, data: bytes, addr: Any) -> bytes | Awaitable[bytes | None] | None:
        """Handle one datagram from ``addr``; return the reply or ``None``."""
        raise NotImplementedError(f"{type(self).__name__} must define handle()")

    def sendto(self, data: bytes, addr: Any) -> None:
        """Send a datagram that is not a direct reply (counted in the server stats)."""
        self.server.sendto(data, addr)
