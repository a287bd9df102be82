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

if TYPE_CHECKING:
    from ._connection import LineConnection, StreamConnection
    from ._connection.stream import ConnectionReader, ConnectionWriter
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
    """Stream handler: ``async handle()`` drives the connection with a reader and a writer.

    ``self.reader`` and ``self.writer`` have the methods of :class:`asyncio.StreamReader`
    and :class:`asyncio.StreamWriter` (see
    :class:`~asyncnet.servers.ConnectionReader` and
    :class:`~asyncnet.servers.ConnectionWriter`); ``drain()`` enforces the server's
    write timeout and costs nothing while the transport's buffer is below its
    high-water mark.  When ``handle()`` returns the connection is closed.

    :meth:`readline` (or ``self.reader.readline()``) raises
    :class:`~asyncnet.errors.LineTooLong` when no delimiter arrives within
    ``max_line_length`` bytes, and again on every later call, where asyncio's drops the
    buffer and returns the line's *tail* as the next line; the connection is then
    closed.  A line already received is returned without a task switch.
    """

    max_line_length: ClassVar[int] = 64 * 1024
    """The longest line :meth:`readline` accepts; reading pauses once twice this much
    is buffered unread."""
    lines_per_batch: ClassVar[int] = 64
    """Lines :meth:`readline` returns from buffered input before it lets other
    connections run (a client pipelining thousands of lines must not hold up the rest)."""
    read_size: ClassVar[int] = 64 * 1024
    """Bytes a subclass asks of the reader per read (``FramedHandler``)."""

    reader: ConnectionReader
    writer: ConnectionWriter
    _connection: StreamConnection

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
        return await self.reader.readline(delimiter)

    async def readexactly(self, n: int) -> bytes:
        """Read exactly ``n`` bytes (``self.reader.readexactly``).

        Raises :class:`asyncio.IncompleteReadError` if the input ends first.
        """
        return await self.reader.readexactly(n)


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
