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
``"implicit"`` (TLS from the first byte, port 995).  ``ssl`` is the trust, as for
every asyncnet client (:mod:`asyncnet._tls`): ``None``/``True`` the system's CAs, an
:class:`ssl.SSLContext` as given (a private CA, a client certificate), ``False`` no
TLS at all.  ``require_tls=True`` refuses to send a password over a connection that
is not encrypted, whatever ``tls`` is.

Logging in: :meth:`login` (USER/PASS), :meth:`apop`, :meth:`auth` (SASL, RFC 5034:
PLAIN, LOGIN, CRAM-MD5, XOAUTH2) or :meth:`authenticate`, which picks the best
method the server offers.  SASL PLAIN, LOGIN and XOAUTH2 send the secret itself,
so over a connection that is not encrypted they are refused (:class:`TLSRequired`,
nothing sent) unless the caller said ``tls="none"`` (the loopback default does not
count) or ``allow_cleartext_auth=True``.

Pipelining (RFC 2449): when CAPA announces ``PIPELINING``, commands from concurrent
callers, and :meth:`POP3Client.retr_many`'s, go out without waiting for the replies
before them (at most ``max_in_flight`` at once; logins, STLS, CAPA and QUIT alone), and
each caller reads its own reply in the order sent.

One verb a method, each a few lines; the parsing is in
:mod:`asyncnet.mail._pop3.protocol`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import ssl as ssl_module
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeAlias

from ..._boundary import network_errors
from ..._compat import discard_stream_buffer
from ..._lifecycle import Endpoint
from ..._tls import SSLSetting, resolve_ssl
from ...clients import open_stream
from ...errors import ConfigurationError, NetworkError, OperationTimeout
from .._errors import (
    POP3ConnectionError,
    POP3Error,
    POP3ProtocolError,
    POP3ReplyError,
    TLSRequired,
)
from .protocol import (
    NEED_DATA,
    BodyChunk,
    BodyEnd,
    Closed,
    Continuation,
    POP3Protocol,
    Status,
    apop_timestamp,
    parse_capa,
    parse_listing,
    parse_stat,
    parse_uidl,
    parse_uidl_reply,
)
from .sasl import SASLClient

__all__ = ["POP3_AUTH_METHODS", "POP3AuthMethod", "POP3Client", "POP3TLSMode"]

POP3TLSMode: TypeAlias = Literal["none", "stls", "opportunistic", "implicit"]
_MODES = ("none", "stls", "opportunistic", "implicit")

POP3AuthMethod: TypeAlias = Literal["user", "apop", "plain", "login", "cram-md5", "xoauth2"]
"""How to log in: USER/PASS, APOP, or a SASL mechanism (lower case)."""
POP3_AUTH_METHODS: Final[tuple[POP3AuthMethod, ...]] = (
    "user",
    "apop",
    "plain",
    "login",
    "cram-md5",
    "xoauth2",
)
"""Every :data:`POP3AuthMethod`, in the order ``mailbox --auth`` lists them."""

# What authenticate() tries first.  Over TLS the password itself is safe, and PLAIN
# is what every server has (CRAM-MD5 makes the server keep passwords in clear text);
# without TLS only the challenge-response methods keep the password off the wire.
_PREFERENCE_ENCRYPTED: Final[tuple[POP3AuthMethod, ...]] = (
    "plain",
    "login",
    "user",
    "cram-md5",
    "apop",
)
_PREFERENCE_CLEARTEXT: Final[tuple[POP3AuthMethod, ...]] = (
    "cram-md5",
    "apop",
    "plain",
    "login",
    "user",
)
_SENDS_PASSWORD: Final = frozenset({"user", "plain", "login", "xoauth2"})
# Commands that may be sent before the replies to earlier ones (RFC 2449 PIPELINING):
# those of the TRANSACTION state that change nothing but the deletion marks.  Logins,
# STLS, CAPA and QUIT change the session, so each goes alone.
_PIPELINABLE: Final = frozenset({"STAT", "LIST", "UIDL", "TOP", "RETR", "DELE", "NOOP", "RSET"})
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
        ssl: SSLSetting = None,
        ssl_context: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        require_tls: bool | None = None,
        allow_cleartext_auth: bool | None = None,
        timeout: float | None = 30.0,
        connect_timeout: float | None = None,
        max_line_length: int = 8 * 1024,
        max_response_size: int = 16 * 1024 * 1024,
        max_message_size: int = 64 * 1024 * 1024,
        max_in_flight: int = 8,
    ) -> None:
        if ssl_context is not None:  # the older spelling of ssl=context
            if ssl is not None:
                raise ConfigurationError("give ssl or ssl_context, not both (they are the same)")
            ssl = ssl_context
        # tls="none" or ssl=False, said by the caller (not the loopback default), is
        # consent to log in without TLS, as for the SMTP client.
        said_no_tls = tls == "none" or ssl is False
        if ssl is False:
            if tls not in (None, "none"):
                raise ConfigurationError(f"ssl=False means no TLS, but tls is {tls!r}")
            tls = "none"
        # None/True: the system's trust, built when TLS is first needed.
        context = None if ssl is None or ssl is True else resolve_ssl(ssl)
        if tls is None:
            tls = "none" if host in _LOOPBACK else "stls"
        if tls not in _MODES:
            raise ConfigurationError(f"tls must be one of {', '.join(_MODES)}, not {tls!r}")
        if max_in_flight < 1:
            raise ConfigurationError(f"max_in_flight must be 1 or more, not {max_in_flight}")
        self.host = host
        self.port = port if port is not None else (995 if tls == "implicit" else 110)
        self.tls: POP3TLSMode = tls
        self.require_tls = require_tls if require_tls is not None else tls in ("stls", "implicit")
        self.ssl_context = context
        self.allow_cleartext_auth = (
            said_no_tls if allow_cleartext_auth is None else allow_cleartext_auth
        )
        """Send the password itself (USER/PASS through :meth:`authenticate`, SASL PLAIN,
        LOGIN, XOAUTH2) over a connection that is not encrypted: by default only when
        the caller said ``tls="none"`` or ``ssl=False``, not the loopback default."""
        self.server_hostname = server_hostname
        self.timeout = timeout
        self.connect_timeout = connect_timeout if connect_timeout is not None else timeout
        self.peer: Any = (host, self.port)
        self.greeting = ""
        """The server's greeting text (after ``+OK``)."""
        self.capabilities: dict[str, list[str]] = {}
        """What CAPA said (filled by :meth:`capa`, and by :meth:`start` when TLS is wanted)."""
        self.capabilities_known = False
        """True once CAPA was asked on this connection (and since STLS, if any)."""
        self.quit_confirmed = False
        """True once the server answered ``+OK`` to QUIT: deletions are applied."""
        self._limits = (max_line_length, max_response_size, max_message_size)
        self._protocol = self._new_protocol()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._broken: BaseException | None = None
        self.max_in_flight = max_in_flight
        """Commands sent ahead of their replies when the server allows PIPELINING."""
        self._slot_waiters: list[asyncio.Future[None]] = []
        self._in_flight = 0
        self._exclusive = False
        self._turns: collections.deque[asyncio.Future[None]] = collections.deque()

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
                self.capabilities_known = True
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

    def _unusable(self, phase: str) -> POP3ConnectionError:
        return POP3ConnectionError(
            f"the connection is unusable after an earlier error: {self._broken}",
            self.peer,
            phase,
        )

    @property
    def pipelining(self) -> bool:
        """True when CAPA announced PIPELINING (RFC 2449): commands go out in batches."""
        return "PIPELINING" in self.capabilities

    def _window(self) -> int:
        return self.max_in_flight if self.pipelining else 1

    @contextlib.asynccontextmanager
    async def _slot(self, exclusive: bool) -> AsyncIterator[None]:
        """A place among the commands in flight: at most :meth:`_window` of them, and an
        ``exclusive`` one (a login, STLS, QUIT...) alone.

        Entering and leaving never wait on a lock, so a cancellation cannot leave a
        place taken."""
        while not (
            self._in_flight == 0
            if exclusive
            else self._in_flight < self._window() and not self._exclusive
        ):
            waiter = asyncio.get_running_loop().create_future()
            self._slot_waiters.append(waiter)
            try:
                await waiter
            finally:
                self._slot_waiters.remove(waiter)
        self._in_flight += 1
        self._exclusive = exclusive
        try:
            yield
        finally:
            self._in_flight -= 1
            if exclusive:
                self._exclusive = False
            for waiter in self._slot_waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _exchange(
        self,
        command: tuple[str, ...] | None,
        phase: str,
        *,
        multiline: bool = False,
        message: bool = False,
        sink: Callable[[bytes], object] | None = None,
        on_challenge: Callable[[bytes], bytes] | None = None,
    ) -> tuple[Status, bytes | int]:
        """Send ``command`` (None: just read, for the greeting) and read its whole reply.

        Returns the status and the body (or, with ``sink``, the number of body bytes
        handed to it).  ``-ERR`` raises :class:`POP3ReplyError`.  ``on_challenge``
        answers AUTH's SASL challenges.

        Commands from concurrent callers are pipelined when the server announced
        PIPELINING: each is written as soon as there is a slot (up to
        ``max_in_flight``), and each caller reads its own reply when the replies
        before it have been read, so replies are taken in the order sent.
        """
        if self._broken is not None:
            raise self._unusable(phase)
        if self._writer is None or self._reader is None:
            raise POP3ConnectionError("not connected (call start())", self.peer, phase)
        reader, writer = self._reader, self._writer
        exclusive = command is None or command[0].upper() not in _PIPELINABLE
        async with self._slot(exclusive):
            if self._broken is not None:
                raise self._unusable(phase)
            # Encoded before any I/O: a refused argument (CR, LF, NUL) leaves the
            # session as it was, with nothing sent.
            data = b""
            if command is not None:
                data = self._protocol.send_command(*command, multiline=multiline, message=message)
            # Written and queued with no await in between, so the order of the replies
            # awaited is the order of the commands on the wire.
            turn = asyncio.get_running_loop().create_future()
            if not self._turns:
                turn.set_result(None)
            self._turns.append(turn)
            try:
                if data:
                    writer.write(data)
                async with self._io(phase, self.timeout):
                    await writer.drain()
                    await turn
                if self._broken is not None:
                    raise self._unusable(phase)
                return await self._read_reply(
                    reader, writer, b"", command, phase, multiline, sink, on_challenge
                )
            except BaseException as exc:
                # A reply that was never read would be taken for the next command's.
                if not isinstance(exc, POP3ReplyError):
                    self._fail(exc)
                raise
            finally:
                self._next_turn(turn)

    def _next_turn(self, turn: asyncio.Future[None]) -> None:
        """``turn``'s reply is read (or never will be): the next caller reads its own."""
        with contextlib.suppress(ValueError):
            self._turns.remove(turn)
        if self._turns and not self._turns[0].done():
            self._turns[0].set_result(None)

    async def _read_reply(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        data: bytes,
        command: tuple[str, ...] | None,
        phase: str,
        multiline: bool,
        sink: Callable[[bytes], object] | None,
        on_challenge: Callable[[bytes], bytes] | None = None,
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
                elif isinstance(event, Continuation):
                    if on_challenge is None:  # only AUTH expects challenges
                        raise POP3ProtocolError(f"a SASL challenge in reply to {phase}")
                    writer.write(self._protocol.send_sasl_response(on_challenge(event.data)))
                    await writer.drain()
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
        self.capabilities_known = True
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
        self.capabilities_known = False

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

    def _check_cleartext_allowed(self, what: str) -> None:
        if not self.encrypted and not self.allow_cleartext_auth:
            raise TLSRequired(
                self.peer,
                f"{what} would send the password in cleartext; connect with TLS"
                " (tls='stls' or 'implicit'), or say tls='none' (or"
                " allow_cleartext_auth=True) to send it anyway",
            )

    async def auth(self, mechanism: str, user: str, secret: str, *, authzid: str = "") -> str:
        """AUTH (RFC 5034): log in with SASL ``PLAIN``, ``LOGIN``, ``CRAM-MD5`` or ``XOAUTH2``.

        ``secret`` is the password, or XOAUTH2's OAuth 2.0 access token; ``authzid``
        (PLAIN) asks to act for another user.  PLAIN, LOGIN and XOAUTH2 without TLS
        raise :class:`TLSRequired` before sending anything, unless
        ``allow_cleartext_auth``.  The server's ``-ERR`` (the mechanism or the
        credentials refused) is a :class:`POP3ReplyError` whose ``command`` names the
        mechanism (``"AUTH CRAM-MD5"``); the session goes on.
        """
        sasl = SASLClient(mechanism, user, secret, authzid=authzid)
        self._check_secret_allowed()
        if sasl.sends_secret:
            self._check_cleartext_allowed(f"SASL {sasl.mechanism}")
        try:
            status, _ = await self._exchange(sasl.command(), "AUTH", on_challenge=sasl.respond)
        except POP3ReplyError as exc:
            reply = exc.reply
            if sasl.server_error:  # XOAUTH2 explains a refused token in its last challenge
                reply += f" ({sasl.server_error.decode('utf-8', 'replace')})"
            raise POP3ReplyError(f"AUTH {sasl.mechanism}", reply) from None
        return status.text

    async def auth_methods(self, *, usable_only: bool = True) -> list[POP3AuthMethod]:
        """The login methods the server offers, best first.

        Asks CAPA first if it was not asked yet.  USER comes from CAPA's ``USER``
        (or is assumed when the server has no CAPA), APOP from a timestamp in the
        greeting, SASL mechanisms from CAPA's ``SASL`` line.  Over TLS, PLAIN comes
        first; without it CRAM-MD5 and APOP (the password stays off the wire).
        ``usable_only`` leaves out, on a connection that is not encrypted, the methods
        that send the password (USER, PLAIN, LOGIN) unless ``allow_cleartext_auth``.
        XOAUTH2 needs a token, not a password, so it is never chosen for you: it is
        listed only when the server offers it, last.
        """
        if not self.capabilities_known:
            with contextlib.suppress(POP3ReplyError):  # CAPA is optional (RFC 2449)
                await self.capa()
            self.capabilities_known = True
        caps = self.capabilities
        sasl = {word.upper() for word in caps.get("SASL", [])}
        order = _PREFERENCE_ENCRYPTED if self.encrypted else _PREFERENCE_CLEARTEXT
        offered: list[POP3AuthMethod] = []
        for method in (*order, "xoauth2"):
            if method == "user":
                found = "USER" in caps or not caps  # RFC 1939's own login, if no CAPA
            elif method == "apop":
                found = apop_timestamp(self.greeting) is not None
            else:
                found = method.upper() in sasl
            if found:
                offered.append(method)
        if usable_only:
            return [m for m in offered if self._may_send(m)]
        return offered

    def _may_send(self, method: POP3AuthMethod) -> bool:
        return self.encrypted or self.allow_cleartext_auth or method not in _SENDS_PASSWORD

    async def authenticate(
        self, user: str, secret: str, method: POP3AuthMethod | None = None
    ) -> POP3AuthMethod:
        """Log in with ``method``, or with the best one :meth:`auth_methods` finds; returns it.

        USER/PASS, PLAIN, LOGIN and XOAUTH2 send the password (or token) itself: over a
        connection that is not encrypted they raise :class:`TLSRequired` (nothing sent)
        unless ``allow_cleartext_auth``; :meth:`login` is the tutorial's USER/PASS as
        ``poplib`` sends it, refused only by ``require_tls``.  Without ``method``,
        when the server offers none asyncnet speaks, :class:`POP3Error`.  ``-ERR`` is a
        :class:`POP3ReplyError`, as for each method.
        """
        if method is None:
            offered = await self.auth_methods(usable_only=False)
            usable = [m for m in offered if self._may_send(m) and m != "xoauth2"]
            if not usable:
                if any(m != "xoauth2" for m in offered):
                    names = ", ".join(m.upper() for m in offered)
                    self._check_cleartext_allowed(f"every login method offered ({names})")
                sasl = " ".join(self.capabilities.get("SASL", [])) or "none"
                raise POP3Error(
                    f"{self.host}: the server offers no login method asyncnet speaks"
                    f" (SASL: {sasl}; no USER, no APOP)"
                )
            method = usable[0]
        if method == "user":
            self._check_secret_allowed()
            self._check_cleartext_allowed("USER/PASS")
            await self.login(user, secret)
        elif method == "apop":
            await self.apop(user, secret)
        elif method in POP3_AUTH_METHODS:
            await self.auth(method.upper(), user, secret)
        else:
            raise ConfigurationError(
                f"unknown login method {method!r}: use one of {', '.join(POP3_AUTH_METHODS)}"
            )
        return method

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

    async def retr_many(self, numbers: Iterable[int]) -> AsyncIterator[tuple[int, bytes]]:
        """RETR each of ``numbers``; yields ``(number, message)`` in that order.

        When the server announces PIPELINING (CAPA is asked first if it was not), up to
        ``max_in_flight`` RETRs are on the wire at once, so a mailbox costs about one
        round trip rather than one per message; otherwise one at a time.  At most
        ``max_in_flight`` messages are held.  Other commands may be sent from inside
        the loop (``pop.dele(n)``, best as a task gathered after it: awaiting each
        one waits for the RETRs before it).  A ``-ERR`` ends the loop with
        :class:`POP3ReplyError` once the replies in flight are read; leaving the loop
        early also reads them, so the session stays usable either way.
        """
        async for item in self._pipelined(numbers, self.retr):
            yield item

    async def top_many(
        self, numbers: Iterable[int], lines: int = 0
    ) -> AsyncIterator[tuple[int, bytes]]:
        """TOP each of ``numbers`` (``lines`` body lines), pipelined as :meth:`retr_many` is."""
        async for item in self._pipelined(numbers, lambda n: self.top(n, lines)):
            yield item

    async def _pipelined(
        self, numbers: Iterable[int], call: Callable[[int], Awaitable[bytes]]
    ) -> AsyncIterator[tuple[int, bytes]]:
        if not self.capabilities_known:
            with contextlib.suppress(POP3ReplyError):  # CAPA is optional (RFC 2449)
                await self.capa()
            self.capabilities_known = True
        in_flight: collections.deque[tuple[int, asyncio.Future[bytes]]] = collections.deque()
        wanted = iter(numbers)
        drain = True  # read what is in flight when the loop ends, so replies stay in step
        try:
            while True:
                while len(in_flight) < self._window():
                    number = next(wanted, None)
                    if number is None:
                        break
                    in_flight.append((number, asyncio.ensure_future(call(number))))
                if not in_flight:
                    return
                number, reply = in_flight.popleft()
                try:
                    data = await reply
                except POP3ReplyError:
                    raise
                except BaseException:
                    drain = False  # the connection is failed (or we are cancelled)
                    raise
                yield number, data
        finally:
            if in_flight:
                if not drain:
                    for _, reply in in_flight:
                        reply.cancel()
                await asyncio.gather(*(reply for _, reply in in_flight), return_exceptions=True)

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
