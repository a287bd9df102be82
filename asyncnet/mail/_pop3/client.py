"""An asyncio POP3 client: the tutorial's ``poplib`` session, with limits and typed errors.

::

    async with POP3Client("127.0.0.1", port) as pop:
        await pop.login("alice", password)
        count, size = await pop.stat()
        for number, octets in (await pop.list()).items():
            message = await pop.retr(number)          # bytes, byte-exact
            await pop.dele(number)
    # leaving the block normally says QUIT: the server applies the deletions;
    # leaving it with an exception just closes: nothing is deleted (RFC 1939 UPDATE)

The parsing is :class:`~asyncnet.mail._pop3.protocol.POP3Protocol` (sans-IO); this
class is the loop that reads until the parser has an event.  Errors:

* :class:`~asyncnet.mail._errors.POP3ReplyError` -- the server said ``-ERR``
  (the session goes on);
* :class:`~asyncnet.mail._errors.POP3ProtocolError` -- the server broke the protocol
  or a limit (the connection is closed);
* :class:`~asyncnet.mail._errors.POP3ConnectionError` -- the connection failed or
  dropped (a :class:`~asyncnet.errors.NetworkError`);
* :class:`~asyncnet.errors.OperationTimeout` -- a command got no complete reply in
  ``timeout`` seconds (the connection is closed: its replies would be out of step);
* :class:`~asyncnet.mail._errors.TLSRequired` -- TLS is required and unavailable;
  nothing secret was sent.

``tls``: ``"none"`` (the default on loopback), ``"stls"`` (STLS required, the
default elsewhere), ``"opportunistic"`` (STLS when CAPA offers it) or
``"implicit"`` (TLS from the first byte, port 995).  ``require_tls=True`` refuses
to send a password over a connection that is not encrypted, whatever ``tls`` is.

One verb a method, each a few lines; the parsing is in
:mod:`asyncnet.mail._pop3.protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl as ssl_module
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Literal, Self, TypeAlias

from ..._boundary import network_errors
from ..._compat import discard_stream_buffer
from ..._lifecycle import Endpoint
from ...clients import open_stream
from ...errors import ConfigurationError, NetworkError, OperationTimeout
from .._errors import POP3ConnectionError, POP3Error, POP3ReplyError, TLSRequired
from .protocol import (
    NEED_DATA,
    BodyChunk,
    BodyEnd,
    Closed,
    POP3Protocol,
    Status,
    apop_timestamp,
    parse_capa,
    parse_listing,
    parse_stat,
    parse_uidl,
    parse_uidl_reply,
)

__all__ = ["POP3Client", "POP3TLSMode"]

POP3TLSMode: TypeAlias = Literal["none", "stls", "opportunistic", "implicit"]
_MODES = ("none", "stls", "opportunistic", "implicit")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_READ_SIZE = 64 * 1024


class POP3Client(Endpoint):
    """One POP3 session; ``async with POP3Client(host, port) as pop`` connects."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        tls: POP3TLSMode | None = None,
        ssl_context: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        require_tls: bool | None = None,
        timeout: float | None = 30.0,
        connect_timeout: float | None = None,
        max_line_length: int = 8 * 1024,
        max_response_size: int = 16 * 1024 * 1024,
        max_message_size: int = 64 * 1024 * 1024,
    ) -> None:
        if tls is None:
            tls = "none" if host in _LOOPBACK else "stls"
        if tls not in _MODES:
            raise ConfigurationError(f"tls must be one of {', '.join(_MODES)}, not {tls!r}")
        self.host = host
        self.port = port if port is not None else (995 if tls == "implicit" else 110)
        self.tls: POP3TLSMode = tls
        self.require_tls = require_tls if require_tls is not None else tls in ("stls", "implicit")
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.timeout = timeout
        self.connect_timeout = connect_timeout if connect_timeout is not None else timeout
        self.peer: Any = (host, self.port)
        self.greeting = ""
        """The server's greeting text (after ``+OK``)."""
        self.capabilities: dict[str, list[str]] = {}
        """What CAPA said (filled by :meth:`capa`, and by :meth:`start` when TLS is wanted)."""
        self.quit_confirmed = False
        """True once the server answered ``+OK`` to QUIT: deletions are applied."""
        self._limits = (max_line_length, max_response_size, max_message_size)
        self._protocol = self._new_protocol()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._broken: BaseException | None = None
        self._lock = asyncio.Lock()

    def _new_protocol(self, *, expect_greeting: bool = True) -> POP3Protocol:
        line, response, message = self._limits
        return POP3Protocol(
            max_line_length=line,
            max_response_size=response,
            max_message_size=message,
            peer=self.peer,
            expect_greeting=expect_greeting,
        )

    @property
    def encrypted(self) -> bool:
        """True when the connection is protected by TLS."""
        return self._writer is not None and self._writer.get_extra_info("sslcontext") is not None

    def _context(self) -> ssl_module.SSLContext:
        if self.ssl_context is None:
            self.ssl_context = ssl_module.create_default_context()
        return self.ssl_context

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> Self:
        """Connect, read the greeting and (as ``tls`` says) upgrade with STLS."""
        implicit = self.tls == "implicit"
        async with self._io("connect", self.connect_timeout):
            self._reader, self._writer, self.peer = await open_stream(
                self.host,
                self.port,
                path=None,
                ssl=self._context() if implicit else None,
                server_hostname=(self.server_hostname or self.host) if implicit else None,
                timeout=self.connect_timeout,
            )
        self._protocol.peer = self.peer
        try:
            status, _ = await self._exchange(None, "greeting")
            self.greeting = status.text
            if self.tls in ("stls", "opportunistic"):
                with contextlib.suppress(POP3ReplyError):  # CAPA is optional (RFC 2449)
                    await self.capa()
                if "STLS" in self.capabilities or self.tls == "stls":
                    await self.stls()
        except BaseException:
            self.close()
            raise
        return self

    def close(self, grace: float | None = None) -> None:
        """Drop the connection now, without QUIT (the server deletes nothing; ``grace`` unused)."""
        if self._writer is not None:
            self._writer.close()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed (errors are ignored)."""
        if self._writer is not None:
            with contextlib.suppress(OSError, ssl_module.SSLError):
                await self._writer.wait_closed()

    async def stop(self, grace: float | None = None) -> None:
        """End the session with QUIT (deletions are applied), then close."""
        if self._writer is not None and self._broken is None and not self._writer.is_closing():
            with contextlib.suppress(POP3Error, NetworkError, OperationTimeout):
                async with asyncio.timeout(grace):
                    await self.quit()
        self.close()
        await self.wait_closed()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.stop()
        else:  # something went wrong: leave the maildrop as it was
            self.close()
            await self.wait_closed()

    # -- the read loop ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _io(self, phase: str, timeout: float | None) -> AsyncIterator[None]:
        """Bound by ``timeout``; OS errors become POP3ConnectionError; failures are final."""
        try:
            async with network_errors(self.peer, phase, timeout):
                yield
        except POP3ReplyError:
            raise
        except NetworkError as exc:
            self._fail(exc)
            if isinstance(exc, POP3ConnectionError):
                raise
            raise POP3ConnectionError(
                str(exc), exc.peer, exc.phase, errno=exc.errno, reason=exc.reason
            ) from exc
        except BaseException as exc:
            self._fail(exc)
            raise

    def _fail(self, exc: BaseException) -> None:
        if self._broken is None:
            self._broken = exc
        self.close()

    async def _exchange(
        self,
        command: tuple[str, ...] | None,
        phase: str,
        *,
        multiline: bool = False,
        message: bool = False,
        sink: Callable[[bytes], object] | None = None,
    ) -> tuple[Status, bytes | int]:
        """Send ``command`` (None: just read, for the greeting) and read its whole reply.

        Returns the status and the body (or, with ``sink``, the number of body bytes
        handed to it).  ``-ERR`` raises :class:`POP3ReplyError`.
        """
        if self._broken is not None:
            raise POP3ConnectionError(
                f"the connection is unusable after an earlier error: {self._broken}",
                self.peer,
                phase,
            )
        if self._writer is None or self._reader is None:
            raise POP3ConnectionError("not connected (call start())", self.peer, phase)
        reader, writer = self._reader, self._writer
        async with self._lock:
            # Encoded before any I/O: a refused argument (CR, LF, NUL) leaves the
            # session as it was, with nothing sent.
            data = b""
            if command is not None:
                data = self._protocol.send_command(*command, multiline=multiline, message=message)
            return await self._read_reply(reader, writer, data, command, phase, multiline, sink)

    async def _read_reply(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        data: bytes,
        command: tuple[str, ...] | None,
        phase: str,
        multiline: bool,
        sink: Callable[[bytes], object] | None,
    ) -> tuple[Status, bytes | int]:
        async with self._io(phase, self.timeout):
            if data:
                writer.write(data)
                await writer.drain()
            status: Status | None = None
            parts: list[bytes] = []
            size = 0
            while True:
                event = self._protocol.next_event()
                if event is NEED_DATA:
                    data = await reader.read(_READ_SIZE)
                    if data:
                        self._protocol.receive_data(data)
                    else:
                        self._protocol.receive_eof()
                    continue
                if isinstance(event, Status):
                    status = event
                    if not (event.ok and multiline):
                        break
                elif isinstance(event, BodyChunk):
                    size += len(event.data)
                    if sink is not None:
                        sink(event.data)
                    else:
                        parts.append(event.data)
                elif isinstance(event, BodyEnd):
                    break
                elif isinstance(event, Closed):
                    raise POP3ConnectionError(event.description, self.peer, event.reply)
        assert status is not None
        if not status.ok:
            raise POP3ReplyError(command[0] if command else "connect", status.text)
        return status, (size if sink is not None else b"".join(parts))

    async def _simple(self, *command: str) -> str:
        status, _ = await self._exchange(command, command[0])
        return status.text

    async def _multi(self, *command: str, message: bool = False) -> bytes:
        _, body = await self._exchange(command, command[0], multiline=True, message=message)
        assert isinstance(body, bytes)
        return body

    # -- commands ------------------------------------------------------------------

    async def capa(self) -> dict[str, list[str]]:
        """CAPA: the server's capabilities, ``{"TOP": [], "SASL": ["PLAIN"], ...}``."""
        self.capabilities = parse_capa(await self._multi("CAPA"))
        return self.capabilities

    async def stls(self) -> None:
        """STLS: upgrade to TLS; with ``require_tls`` a refusal raises :class:`TLSRequired`."""
        try:
            await self._simple("STLS")
        except POP3ReplyError as exc:
            if self.require_tls or self.tls == "stls":
                self._fail(exc)
                raise TLSRequired(self.peer, f"STLS refused: {exc.reply}") from exc
            return
        assert self._writer is not None
        assert self._reader is not None
        # Bytes that came after the +OK were sent before the handshake, in plaintext,
        # by someone who may not be the server: they must never be read as replies.
        self._protocol.discard_buffered()
        discard_stream_buffer(self._reader)
        async with self._io("starttls", self.timeout):
            await self._writer.start_tls(
                self._context(), server_hostname=self.server_hostname or self.host
            )
        self._protocol = self._new_protocol(expect_greeting=False)
        self.capabilities = {}  # RFC 2595: forget what was learnt before TLS

    def _check_secret_allowed(self) -> None:
        if self.require_tls and not self.encrypted:
            exc = TLSRequired(self.peer, "the connection is not encrypted, no password sent")
            self._fail(exc)
            raise exc

    async def login(self, user: str, password: str) -> str:
        """USER and PASS; returns the server's text (often the mailbox size)."""
        self._check_secret_allowed()
        await self._simple("USER", user)
        return await self._simple("PASS", password)

    async def apop(self, user: str, secret: str) -> str:
        """APOP: log in without sending the password (MD5 of the greeting's timestamp)."""
        self._check_secret_allowed()
        timestamp = apop_timestamp(self.greeting)
        if timestamp is None:
            raise POP3ReplyError("APOP", "the server's greeting offers no APOP timestamp")
        digest = hashlib.md5((timestamp + secret).encode(), usedforsecurity=False).hexdigest()
        return await self._simple("APOP", user, digest)

    async def stat(self) -> tuple[int, int]:
        """STAT: (number of messages, total size in octets)."""
        return parse_stat(await self._simple("STAT"))

    async def list(self, number: int | None = None) -> dict[int, int]:
        """LIST: ``{message number: size}`` (just one entry with ``number``)."""
        if number is not None:
            listing = parse_listing((await self._simple("LIST", str(number))).encode())
            return listing
        return parse_listing(await self._multi("LIST"))

    async def uidl(self, number: int | None = None) -> dict[int, str]:
        """UIDL: ``{message number: unique-id}``, stable across sessions.

        With ``number``, both reply forms are taken: ``+OK n uid`` (RFC 1939) and
        ``+OK uid`` (twisted.mail.pop3's, the reply being for the message asked for).
        """
        if number is not None:
            found, uid = parse_uidl_reply(await self._simple("UIDL", str(number)), number)
            return {found: uid}
        return parse_uidl(await self._multi("UIDL"))

    async def retr(self, number: int) -> bytes:
        """RETR: the whole message, byte-exact (CRLF line endings)."""
        return await self._multi("RETR", str(number), message=True)

    async def retr_to(self, number: int, sink: Callable[[bytes], object]) -> int:
        """RETR streamed: hand the message to ``sink`` (e.g. ``file.write``) piece by
        piece; returns its size.  Memory stays bounded whatever the message's size."""
        _, size = await self._exchange(
            ("RETR", str(number)), "RETR", multiline=True, message=True, sink=sink
        )
        assert isinstance(size, int)
        return size

    async def top(self, number: int, lines: int = 0) -> bytes:
        """TOP: the headers, the blank line and the first ``lines`` body lines."""
        return await self._multi("TOP", str(number), str(lines), message=True)

    async def dele(self, number: int) -> str:
        """DELE: mark a message deleted (applied only when QUIT succeeds)."""
        return await self._simple("DELE", str(number))

    async def rset(self) -> str:
        """RSET: unmark every deleted message."""
        return await self._simple("RSET")

    async def noop(self) -> str:
        """NOOP: keep the session alive."""
        return await self._simple("NOOP")

    async def quit(self) -> str:
        """QUIT: end the session; the server now applies deletions."""
        text = await self._simple("QUIT")
        self.quit_confirmed = True
        self.close()
        return text
