"""aiosmtpd's SMTP protocol with bounded memory, whatever one client sends.

aiosmtpd 1.4's ``smtp_DATA`` reads the message with ``readuntil(b"\\r\\n")``; a line
longer than its stream limit comes back in pieces (``LimitOverrunError``), and every
piece is appended to a list until a CRLF comes, *even after the size limit has been
passed*: one line without CRLF after ``DATA`` grows the server without bound.  And
``smtp_RCPT`` accepts any number of recipients.  :class:`BoundedSMTP` replaces both:

* DATA: lines are kept only while the message is within ``data_size_limit`` and each
  line within ``line_length_limit`` (RFC 5321's 1000 octets plus a transparent dot);
  past either, the rest is read and dropped up to the terminating ``.`` (the reply
  must wait for it, RFC 5321 4.2.5), then the reply is ``552`` (too much data: no
  re-encoding can make the message fit) or ``500`` (a line too long).  The memory a
  session holds is at most the size limit plus one line, plus the stream buffer;
* RCPT: at most ``max_recipients`` (100 by default, RFC 5321 4.5.3.1.8's minimum) per
  transaction; the next get ``452 4.5.3 Too many recipients`` (a temporary failure:
  the client sends them in another transaction).

A handler with a ``begin_DATA(server, session, envelope)`` coroutine streams the
message instead of receiving it whole: it returns a :class:`DataSink` that gets the
message's bytes (unstuffed, CRLF, as ``envelope.original_content`` would hold them) in
pieces of about ``CHUNK_SIZE`` (64 KiB) as they arrive, then ``commit()`` (its reply
is the reply to DATA) or ``abort()`` (a limit passed, or the client went away); its
``handle_DATA`` is not called then, and ``envelope.content`` stays ``None``.  While a
piece is written, the session reads no further: the client waits (TCP flow control),
it does not fill the server.  The memory a streaming session holds is about one piece.

The message is read from aiosmtpd's own stream, which it offers no public access to:
:func:`asyncnet._compat.smtp_streams` is the one place that reaches for it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from aiosmtpd.smtp import MISSING, Envelope, syntax
from aiosmtpd.smtp import SMTP as AioSMTP

from .._compat import smtp_streams
from ..errors import ConfigurationError
from ._maildir import CHUNK_SIZE

__all__ = ["DEFAULT_MAX_RECIPIENTS", "BoundedSMTP", "DataSink"]


class DataSink(Protocol):
    """Where a handler's ``begin_DATA`` has a streamed message go (see the module docs)."""

    async def write(self, data: bytes) -> None:
        """The next piece of the message."""
        ...

    async def commit(self) -> str:
        """The message is complete: store it; returns the reply (``250 ...``, ``451 ...``)."""
        ...

    def abort(self) -> None:
        """Throw what was written away (a limit passed, the client went away)."""
        ...


DEFAULT_MAX_RECIPIENTS = 100
"""RFC 5321 4.5.3.1.8: a server must accept at least 100 recipients per message."""

_TOO_MUCH = "552 Error: Too much mail data"
_TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"
_TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"


class _DataBody:
    """The message after ``DATA``, fed the pieces the stream reader gives, within limits.

    Sans-IO: :meth:`feed` takes a piece (a whole line ending in CRLF, or part of a long
    line) and says when the terminating ``.`` line has come.
    """

    __slots__ = (
        "_line",
        "_line_size",
        "held",
        "line_limit",
        "lines",
        "refusal",
        "size",
        "size_limit",
    )

    def __init__(self, size_limit: int | None, line_limit: int) -> None:
        self.size_limit = size_limit
        self.line_limit = line_limit
        self.lines: list[bytes] = []
        """Complete lines, unstuffed, while the message is within its limits."""
        self.size = 0
        self.held = 0
        """Bytes in :attr:`lines` (what :meth:`take` gives)."""
        self.refusal: str | None = None
        """The reply once a limit was passed (the message is then dropped)."""
        self._line: list[bytes] = []
        self._line_size = 0

    def feed(self, piece: bytes) -> bool:
        """Take one piece; True when it is the terminating ``.\\r\\n``."""
        if self._line_size == 0 and piece == b".\r\n":
            return True
        self.size += len(piece)
        self._line_size += len(piece)
        if self.size_limit and self.size > self.size_limit:
            self._refuse(_TOO_MUCH)  # over the size limit: the stronger refusal wins
        elif self._line_size > self.line_limit and self.refusal is None:
            self._refuse(_TOO_LONG)
        if self.refusal is None:
            self._line.append(piece)
        if piece.endswith(b"\r\n"):
            if self.refusal is None:
                line = b"".join(self._line)
                line = line[1:] if line.startswith(b".") else line
                self.lines.append(line)
                self.held += len(line)
            self._line.clear()
            self._line_size = 0
        return False

    def _refuse(self, reply: str) -> None:
        self.refusal = reply
        self.lines.clear()
        self.held = 0
        self._line.clear()

    def take(self) -> bytes:
        """The complete lines received since the last take, and forget them."""
        data = b"".join(self.lines)
        self.lines.clear()
        self.held = 0
        return data

    def content(self) -> bytes:
        """The message, once the terminator came and no limit was passed."""
        return self.take()


class BoundedSMTP(AioSMTP):
    """aiosmtpd's protocol with a bounded DATA reader and a recipient limit.

    ``registry``: a set the protocol is in while connected (so a server can close every
    session when it stops).  ``max_recipients``: RCPTs accepted per transaction.  Other
    options go to aiosmtpd's ``SMTP``; ``decode_data`` is refused (messages are bytes).
    """

    def __init__(
        self,
        handler: Any,
        registry: set[AioSMTP] | None = None,
        *,
        max_recipients: int = DEFAULT_MAX_RECIPIENTS,
        **options: Any,
    ) -> None:
        if options.get("decode_data"):
            raise ConfigurationError("BoundedSMTP keeps messages as bytes: no decode_data")
        if max_recipients < 1:
            raise ConfigurationError(f"max_recipients must be at least 1, not {max_recipients}")
        super().__init__(handler, **options)
        self._registry = registry if registry is not None else set()
        self.max_recipients = max_recipients

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._registry.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._registry.discard(self)
        super().connection_lost(error)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        """RCPT, refused with 452 once ``max_recipients`` were accepted."""
        if self.envelope is not None and len(self.envelope.rcpt_tos) >= self.max_recipients:
            await self.push(_TOO_MANY_RECIPIENTS)
            return
        await super().smtp_RCPT(arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """DATA, read within ``data_size_limit`` and ``line_length_limit``."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        begin = getattr(self.event_handler, "begin_DATA", None)
        sink: DataSink | None = None
        if begin is not None:
            try:
                sink = await begin(self, self.session, self.envelope)
            except OSError as exc:
                await self.push(f"451 4.3.0 cannot store the message now: {exc.strerror}")
                return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        body = _DataBody(self.data_size_limit, self.line_length_limit)
        try:
            complete = await self._read_data(body, sink)
        except BaseException:
            if sink is not None:
                sink.abort()
            raise
        if not complete:
            if sink is not None:
                sink.abort()
            return
        if body.refusal is not None:
            if sink is not None:
                sink.abort()
            self.envelope = Envelope()  # as after any DATA: a new transaction
            await self.push(body.refusal)
            return
        if sink is not None:
            try:
                await sink.write(body.take())
            except BaseException:
                sink.abort()
                raise
            reply = await sink.commit()
            self.envelope = Envelope()  # as after any DATA: a new transaction
            await self.push(reply)
            return
        content = body.content()
        self.envelope.original_content = content
        self.envelope.content = content
        hook = getattr(self.event_handler, "handle_DATA", None)
        status = MISSING if hook is None else await hook(self, self.session, self.envelope)
        self.envelope = Envelope()  # as after any DATA: a new transaction
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self, body: _DataBody, sink: DataSink | None) -> bool:
        """Read the message up to its terminating dot into ``body``, handing ``sink``
        each ``CHUNK_SIZE`` of it; False if the client went away first."""
        reader, writer = smtp_streams(self)
        while True:
            try:
                # Up to CRLF and no further: a command pipelined after the final dot
                # stays in the reader for aiosmtpd's command loop.
                piece = await reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as exc:
                piece = await reader.read(exc.consumed)  # part of a long line
            except asyncio.IncompleteReadError:
                return False  # the client closed mid-DATA: nothing to deliver
            except asyncio.CancelledError:
                writer.close()  # the connection was lost during DATA
                raise
            if not piece:
                return False
            if body.feed(piece):
                return True
            if sink is not None and body.held >= CHUNK_SIZE:
                await sink.write(body.take())
