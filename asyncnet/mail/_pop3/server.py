"""A POP3 server (RFC 1939, CAPA and PIPELINING from RFC 2449, STLS from RFC 2595, SASL
from RFC 5034) serving Maildirs.

::

    maildirs = Maildirs(tmp_path, users=["alice"])
    auth = PasswordAuthenticator({"alice": "wonderland"})
    async with POP3Server(maildirs, auth, port=0) as server:
        print(server.address)

Each connection is a :class:`POP3Session`, a
:class:`~asyncnet.servers._commands.CommandHandler`: ``do_USER``, ``do_RETR``...
with the verbs RFC 1939 allows in each state:

* AUTHORIZATION: USER/PASS, APOP or AUTH (SASL PLAIN and CRAM-MD5), CAPA, STLS
  (when the server has an ``ssl_context``), QUIT;
* TRANSACTION: STAT, LIST, UIDL, TOP, RETR, DELE, RSET, NOOP, CAPA, QUIT;
* UPDATE happens only on QUIT: a session that drops, times out (``autologout``)
  or is stopped deletes nothing.

SASL (RFC 5034): ``AUTH PLAIN`` (with or without the initial response) and
``AUTH CRAM-MD5`` (RFC 2195; it needs the password in plain text, which the
authenticator's ``secret()`` gives, as for APOP).  A response that is not base64,
or ``*``, ends the exchange with ``-ERR``.

Password guessing is slowed per peer host, across all of its connections, by a
:class:`~asyncnet.servers.LoginThrottle` (one per server unless ``login_throttle``
is given; ``failed_login_delay`` is its first delay): a peer's logins (USER/PASS,
APOP and AUTH alike) are checked one at a time, each failure doubles the delay
before the reply, and a peer whose queue would wait past the throttle's
``max_delay`` is refused at once, its password unchecked, with
``-ERR [SYS/TEMP] too many failed logins; try again later``.
RFC 3206's ``[SYS/TEMP]`` rather than ``[AUTH]``: the credentials were not judged, so
a client must not tell its user the password is wrong, only to try again later.

One session per maildrop at a time (a second login gets ``-ERR [IN-USE]``).  The
maildrop is the user's Maildir as it was at login; UIDL is the Maildir key
(stable across sessions); messages are served with CRLF line endings, dot-stuffed.

RETR and TOP stream the message from its file, ``CHUNK_SIZE`` (64 KiB) at a time,
waiting whenever the connection's write buffer is past its high-water mark (the
server's ``write_buffer_high``) until the client has read it down: a session holds
about one chunk plus that buffer of a message, whatever its size, and a client that
stops reading pauses its RETR (then ``write_timeout`` drops it) instead of growing
the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import inspect
import logging
import os
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, ClassVar, Protocol

from ...servers import CommandHandler, LoginThrottle, StreamServer
from .._maildir import CHUNK_SIZE, Maildirs, MaildropEntry, MessageFile, WireForm
from .sasl import cram_md5_digest, decode_response, encode_response, parse_plain

__all__ = [
    "Authenticator",
    "DotStuffer",
    "POP3Server",
    "POP3Session",
    "PasswordAuthenticator",
    "TopCut",
]

logger = logging.getLogger("asyncnet.mail.pop3")


class Authenticator(Protocol):
    """Checks logins: plug in your own (a database, PAM...)."""

    def check(self, user: str, password: str) -> bool | Awaitable[bool]:
        """True if ``password`` is right for ``user`` (may be ``async``)."""
        ...

    def secret(self, user: str) -> str | None:
        """The shared secret for APOP, or ``None`` (then APOP is refused for ``user``)."""
        ...


def _octets(text: str) -> bytes:
    # Lines are decoded with surrogateescape: give undecodable bytes back as they came.
    return text.encode("utf-8", "surrogateescape")


class PasswordAuthenticator:
    """Users and passwords from a mapping (compared in constant time)."""

    def __init__(self, passwords: Mapping[str, str]) -> None:
        self.passwords = dict(passwords)

    def check(self, user: str, password: str) -> bool:
        """True if ``password`` is ``user``'s."""
        given = _octets(password)
        expected = self.passwords.get(user)
        if expected is None:
            hmac.compare_digest(given, given)  # the same work for unknown users
            return False
        return hmac.compare_digest(given, _octets(expected))

    def secret(self, user: str) -> str | None:
        """The password doubles as the APOP secret."""
        return self.passwords.get(user)


_LOCKED_OUT_REPLY = "-ERR [SYS/TEMP] too many failed logins; try again later"
"""The reply to a login from a peer the login throttle has locked out (RFC 3206)."""

_AUTH_VERBS = {"USER", "PASS", "APOP", "AUTH", "CAPA", "STLS", "QUIT"}
SASL_MECHANISMS = ("PLAIN", "CRAM-MD5")
"""What the server's AUTH offers (CAPA's ``SASL`` line)."""

SASLStep = Callable[[bytes], Awaitable[str]]
"""What answers the client's next SASL response: the reply line (``+ ...``, ``+OK``, ``-ERR``)."""
_TRANSACTION_VERBS = {"STAT", "LIST", "UIDL", "TOP", "RETR", "DELE", "RSET", "NOOP", "CAPA"}


class DotStuffer:
    """RFC 1939 byte-stuffing of a message in wire form, a chunk at a time (sans-IO).

    A line that starts with ``.`` gets another one, also when the chunk before ended
    the previous line: the outputs joined equal the whole message stuffed at once.
    """

    __slots__ = ("_at_start",)

    def __init__(self) -> None:
        self._at_start = True

    def feed(self, chunk: bytes) -> bytes:
        """The stuffed chunk."""
        if not chunk:
            return chunk
        out = chunk.replace(b"\r\n.", b"\r\n..")
        if self._at_start and out.startswith(b"."):
            out = b"." + out
        # Wire form never splits a CRLF between chunks (WireForm keeps a final CR back).
        self._at_start = out.endswith(b"\r\n")
        return out


class TopCut:
    """TOP's cut of a message in wire form, a chunk at a time (sans-IO): the header, the
    empty line after it, then ``lines`` lines of the body.

    A message with no empty line is all header, sent whole.
    """

    __slots__ = ("_in_header", "_left", "_partial", "done")

    def __init__(self, lines: int) -> None:
        self._in_header = True
        self._partial = False  # part of a line was seen, its CRLF not yet
        self._left = lines
        self.done = False
        """True once the cut is complete: nothing more to read."""

    def feed(self, chunk: bytes) -> bytes:
        """What of ``chunk`` belongs to the answer."""
        if self.done:
            return b""
        pos = 0
        while self._in_header:
            end = chunk.find(b"\r\n", pos)
            if end < 0:
                self._partial = self._partial or pos < len(chunk)
                return chunk
            empty = end == pos and not self._partial
            self._partial = False
            pos = end + 2
            if empty:
                self._in_header = False
        if self._left <= 0:
            self.done = True
            return chunk[:pos]
        # Whole chunks at C speed while they hold fewer lines than are still wanted.
        if chunk.count(b"\r\n", pos) < self._left:
            self._left -= chunk.count(b"\r\n", pos)
            return chunk
        while True:
            end = chunk.find(b"\r\n", pos)
            pos = end + 2
            self._left -= 1
            if self._left == 0:
                self.done = True
                return chunk[:pos]


class _DrainWatch:
    """Stands in for a connection's protocol while a reply streams, to hear when the
    transport's write buffer has drained (``resume_writing``).

    A line handler's connection offers no ``drain()``; this forwards every callback to
    it unchanged (its own flow control and write deadline go on working) and wakes
    the writer on ``resume_writing`` and ``connection_lost``.
    """

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self.transport = transport
        self.inner: asyncio.BaseProtocol = transport.get_protocol()
        self.paused = False
        self.lost = False
        self._waiter: asyncio.Future[None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def pause_writing(self) -> None:
        self.paused = True
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.paused = False
        self.inner.resume_writing()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._wake()
        self.inner.connection_lost(exc)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def drain(self) -> None:
        """Return once the write buffer is at or below its high-water mark."""
        transport = self.transport
        high = transport.get_write_buffer_limits()[1]
        # Past the mark the transport has paused us (maybe before we stood in: then
        # only the size tells), and resume_writing() comes once it is down to the low one.
        while self.paused or transport.get_write_buffer_size() > high:
            if self.lost or transport.is_closing():
                raise ConnectionResetError("the POP3 client went away during the reply")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    @contextlib.contextmanager
    def installed(self) -> Iterator[_DrainWatch]:
        """Stand in for the protocol within the block."""
        self.transport.set_protocol(self)  # type: ignore[arg-type]
        try:
            yield self
        finally:
            current: object = self.transport.get_protocol()
            if current is self:
                self.transport.set_protocol(self.inner)


class POP3Session(CommandHandler):
    """One POP3 connection (a :class:`CommandHandler`)."""

    reply_delimiter: ClassVar[bytes | None] = b"\r\n"
    # Replies carry messages as they are: surrogateescape gives any byte back unchanged.
    errors: ClassVar[str] = "surrogateescape"
    max_line_length: ClassVar[int] = 512  # RFC 2449 allows 255 octets; leave room
    max_argument_length: ClassVar[int] = 255
    run_in_task: ClassVar[bool] = True
    allowed_verbs: ClassVar[Mapping[str, set[str]]] = {
        "AUTHORIZATION": _AUTH_VERBS,
        "TRANSACTION": _TRANSACTION_VERBS | {"QUIT"},
        "UPDATE": set(),
    }
    unknown_verb_reply: ClassVar[str] = "-ERR unknown command {verb}"
    not_allowed_reply: ClassVar[str] = "-ERR {verb} not allowed now"
    argument_too_long_reply: ClassVar[str] = "-ERR argument too long"
    empty_line_reply: ClassVar[str | None] = "-ERR empty command"
    error_reply: ClassVar[str | None] = "-ERR {reason}"

    server: POP3Server

    def __init__(self, pop3: POP3Server) -> None:
        self.pop3 = pop3
        self.state = "AUTHORIZATION"
        self.user: str | None = None
        self.locked_user: str | None = None
        self.entries: list[MaildropEntry] = []
        self.deleted: set[int] = set()
        self.tls_active = pop3.ssl is not None
        self.timestamp = f"<{os.getpid()}.{os.urandom(8).hex()}@asyncnet>"
        self.sasl_step: SASLStep | None = None
        """The AUTH exchange waiting for the client's next response line, if any."""

    def greeting(self) -> str:
        """The banner, with the APOP timestamp."""
        return f"+OK asyncnet POP3 server ready {self.timestamp}"

    def finish(self) -> None:
        """Release the maildrop lock; a session that did not QUIT deletes nothing."""
        self._unlock()

    def _unlock(self) -> None:
        if self.locked_user is not None:
            self.pop3.locked.discard(self.locked_user)
            self.locked_user = None

    # -- AUTHORIZATION -------------------------------------------------------------

    def do_CAPA(self, args: str) -> str:
        """CAPA: what this server can do."""
        caps = ["TOP", "UIDL", "USER", "SASL " + " ".join(SASL_MECHANISMS)]
        caps += ["RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self.pop3.ssl_context is not None and not self.tls_active:
            caps.append("STLS")
        caps.append("IMPLEMENTATION asyncnet")
        return "\r\n".join(["+OK capability list follows", *caps, "."])

    def do_USER(self, args: str) -> str:
        """USER name: remembered for PASS (whether it exists is not revealed)."""
        if not args:
            return "-ERR USER needs a name"
        self.user = args
        return "+OK send PASS"

    async def do_PASS(self, args: str) -> str:
        """PASS secret: log in as the USER given before."""
        user, self.user = self.user, None
        if user is None:
            return "-ERR send USER first"
        return await self._login(user, lambda: self.pop3.authenticator.check(user, args))

    async def do_APOP(self, args: str) -> str:
        """APOP name digest: log in with MD5(timestamp + secret)."""
        user, _, digest = args.partition(" ")

        def check() -> bool:
            secret = self.pop3.authenticator.secret(user) if user else None
            if secret is None:
                return False
            expected = hashlib.md5(
                _octets(self.timestamp + secret), usedforsecurity=False
            ).hexdigest()
            return hmac.compare_digest(expected.encode(), _octets(digest.strip().lower()))

        return await self._login(user, check)

    def handle_line(self, line: str) -> str | Awaitable[str | None] | None:
        """A line is a command, except while AUTH waits for the client's response."""
        step = self.sasl_step
        if step is None:
            return super().handle_line(line)
        self.sasl_step = None
        if line.strip() == "*":
            return "-ERR AUTH cancelled"
        try:
            response = decode_response(line)
        except ValueError:
            return "-ERR AUTH response is not base64"
        return step(response)

    def do_AUTH(self, args: str) -> str | Awaitable[str]:
        """AUTH mechanism [initial-response]: SASL (RFC 5034), PLAIN or CRAM-MD5."""
        mechanism, _, initial = args.strip(" ").partition(" ")
        mechanism = mechanism.upper()
        if mechanism == "PLAIN":
            if not initial:
                self.sasl_step = self._auth_plain
                return "+ "
            try:
                # "=" is RFC 5034's empty initial response.
                response = b"" if initial == "=" else decode_response(initial)
            except ValueError:
                return "-ERR AUTH response is not base64"
            return self._auth_plain(response)
        if mechanism == "CRAM-MD5":
            if initial:
                return "-ERR CRAM-MD5 takes no initial response"
            # RFC 2195: a fresh challenge each time, so no response can be replayed.
            challenge = f"<{os.urandom(8).hex()}.{os.getpid()}@asyncnet>".encode("ascii")
            self.sasl_step = lambda response: self._auth_cram_md5(challenge, response)
            return "+ " + encode_response(challenge)
        if not mechanism:
            return f"-ERR AUTH needs a mechanism: {' '.join(SASL_MECHANISMS)}"
        return f"-ERR unsupported SASL mechanism; use one of {' '.join(SASL_MECHANISMS)}"

    async def _auth_plain(self, response: bytes) -> str:
        try:
            authzid, user, password = parse_plain(response)
        except ValueError:
            return "-ERR AUTH PLAIN response is not authzid NUL user NUL password"
        if authzid and authzid != user:
            # Acting for another user is for administrators; this server has none.
            return "-ERR [AUTH] not authorized to act for another user"
        return await self._login(user, lambda: self.pop3.authenticator.check(user, password))

    async def _auth_cram_md5(self, challenge: bytes, response: bytes) -> str:
        text = response.decode("utf-8", "surrogateescape")
        user, _, digest = text.rpartition(" ")  # RFC 2195: the user name may hold spaces

        def check() -> bool:
            secret = self.pop3.authenticator.secret(user) if user else None
            if secret is None:
                return False
            expected = cram_md5_digest(secret, challenge)
            return hmac.compare_digest(expected.encode(), _octets(digest.lower()))

        return await self._login(user, check)

    async def _login(self, user: str, check: Callable[[], bool | Awaitable[bool]]) -> str:
        """Check the credentials in this peer's turn of the server's login throttle."""
        async with self.pop3.login_throttle.attempt(self.peer) as attempt:
            if not attempt.admitted:
                return _LOCKED_OUT_REPLY
            ok = check()
            if inspect.isawaitable(ok):
                ok = await ok
            if not ok:
                logger.info("failed POP3 login for %r from %s", user, self.peer)
                attempt.failed()  # the reply waits out this peer's delay
                return "-ERR [AUTH] invalid user name or password"
            attempt.succeeded()
        if user in self.pop3.locked:
            return "-ERR [IN-USE] maildrop already locked by another session"
        self.pop3.locked.add(user)
        self.locked_user = user
        try:
            self.entries = await asyncio.to_thread(self.pop3.maildirs.scan, user)
        except Exception:
            self._unlock()
            logger.exception("cannot open the maildrop of %r", user)
            return "-ERR [SYS/TEMP] cannot open the maildrop"
        self.state = "TRANSACTION"
        return f"+OK {user} has {len(self.entries)} message(s) ({self._total()} octets)"

    async def do_STLS(self, args: str) -> str | None:
        """STLS: switch this connection to TLS (RFC 2595)."""
        context = self.pop3.ssl_context
        if context is None or self.tls_active:
            return "-ERR STLS not available"
        self.send_line("+OK begin TLS negotiation")
        try:
            await self.start_tls(context, handshake_timeout=self.pop3.handshake_timeout)
        except (OSError, ssl_module.SSLError, TimeoutError) as exc:
            self.abort(f"STLS handshake failed: {exc}")
            return None
        self.tls_active = True
        return None

    # -- TRANSACTION -----------------------------------------------------------------

    def _total(self) -> int:
        return sum(e.size for i, e in enumerate(self.entries, 1) if i not in self.deleted)

    def _message(self, word: str) -> tuple[int, MaildropEntry] | str:
        if not word.isascii() or not word.isdigit() or len(word) > 10:
            return "-ERR invalid message number"
        number = int(word)
        if not 1 <= number <= len(self.entries) or number in self.deleted:
            return f"-ERR no such message {number}"
        return number, self.entries[number - 1]

    def do_STAT(self, args: str) -> str:
        """STAT: count and size of the messages not marked deleted."""
        return f"+OK {len(self.entries) - len(self.deleted)} {self._total()}"

    def _listing(self, args: str, field: str) -> str:
        if args:
            found = self._message(args.split(" ")[0])
            if isinstance(found, str):
                return found
            number, entry = found
            return f"+OK {number} {getattr(entry, field)}"
        lines = [
            f"{i} {getattr(e, field)}"
            for i, e in enumerate(self.entries, 1)
            if i not in self.deleted
        ]
        return "\r\n".join(["+OK", *lines, "."])

    def do_LIST(self, args: str) -> str:
        """LIST [n]: message sizes."""
        return self._listing(args, "size")

    def do_UIDL(self, args: str) -> str:
        """UIDL [n]: unique-ids, the same in every session."""
        return self._listing(args, "uid")

    async def _open(self, entry: MaildropEntry) -> MessageFile | None:
        assert self.locked_user is not None
        try:
            return await asyncio.to_thread(self.pop3.maildirs.open, self.locked_user, entry.key)
        except (KeyError, FileNotFoundError):
            return None

    async def _stream(self, status: str, file: MessageFile, cut: TopCut | None) -> str:
        """Send ``status``, then the message from ``file`` a chunk at a time, dot-stuffed;
        return the final ``.`` line (the connection writes it after the last chunk)."""
        transport, stats = self.transport, self.server.stats
        self.send_line(status)  # after any reply queued before it (PIPELINING)
        form, stuffer = WireForm(), DotStuffer()
        with _DrainWatch(transport).installed() as watch:
            while True:
                chunk = await asyncio.to_thread(file.read, CHUNK_SIZE)
                out = form.feed(chunk) if chunk else form.finish()
                if cut is not None:
                    out = cut.feed(out)
                if out:
                    if watch.lost or transport.is_closing():
                        raise ConnectionResetError("the POP3 client went away during the reply")
                    data = stuffer.feed(out)
                    stats.bytes_out += len(data)  # past the connection: count it here
                    transport.write(data)
                    await watch.drain()
                if not chunk or (cut is not None and cut.done):
                    break
        return "."

    async def _send_message(self, entry: MaildropEntry, status: str, cut: TopCut | None) -> str:
        file = await self._open(entry)
        if file is None:
            return "-ERR message was removed by someone else"
        try:
            return await self._stream(status, file, cut)
        finally:
            file.close()

    async def do_RETR(self, args: str) -> str:
        """RETR n: the whole message, dot-stuffed (streamed from its file)."""
        found = self._message(args)
        if isinstance(found, str):
            return found
        _, entry = found
        return await self._send_message(entry, f"+OK {entry.size} octets", None)

    async def do_TOP(self, args: str) -> str:
        """TOP n lines: the headers and the first ``lines`` lines of the body."""
        words = args.split(" ")
        if len(words) != 2 or not words[1].isascii() or not words[1].isdigit():
            return "-ERR usage: TOP message lines"
        found = self._message(words[0])
        if isinstance(found, str):
            return found
        return await self._send_message(
            found[1], "+OK top of message follows", TopCut(int(words[1]))
        )

    def do_DELE(self, args: str) -> str:
        """DELE n: mark for deletion (done at QUIT)."""
        found = self._message(args)
        if isinstance(found, str):
            return found
        self.deleted.add(found[0])
        return f"+OK message {found[0]} deleted"

    def do_RSET(self, args: str) -> str:
        """RSET: unmark every message."""
        self.deleted.clear()
        return f"+OK maildrop has {len(self.entries)} message(s)"

    def do_NOOP(self, args: str) -> str:
        """NOOP: nothing."""
        return "+OK"

    async def do_QUIT(self, args: str) -> str:
        """QUIT: in TRANSACTION, enter UPDATE and remove the deleted messages."""
        self.close()
        if self.state != "TRANSACTION":
            return "+OK bye"
        self.state = "UPDATE"
        assert self.locked_user is not None
        keys = [self.entries[i - 1].key for i in sorted(self.deleted)]
        try:
            await asyncio.to_thread(self.pop3.maildirs.remove, self.locked_user, keys)
        except OSError:
            logger.exception("removing deleted messages of %r failed", self.locked_user)
            return "-ERR [SYS/TEMP] some deleted messages were not removed"
        finally:
            self._unlock()
        return f"+OK bye ({len(keys)} message(s) deleted)"


class POP3Server(StreamServer):
    """A POP3 server for the Maildirs of ``maildirs``, checking logins with ``authenticator``.

    ``ssl_context`` enables STLS; ``implicit_tls=True`` serves TLS from the first
    byte instead (port 995 style).  ``autologout`` closes an idle session (RFC 1939
    asks for at least 10 minutes; the default).  ``login_throttle`` slows password
    guessing per peer across its connections (share one with other servers to pool
    their penalties); without it the server makes its own, with ``failed_login_delay``
    as the delay after a first failure (doubling with each further one, up to
    ``max(30, failed_login_delay)`` seconds).  Other options go to
    :class:`~asyncnet.servers.StreamServer` (``host``, ``port``...).
    """

    def __init__(
        self,
        maildirs: Maildirs,
        authenticator: Authenticator,
        *,
        ssl_context: ssl_module.SSLContext | None = None,
        implicit_tls: bool = False,
        failed_login_delay: float = 1.0,
        login_throttle: LoginThrottle | None = None,
        autologout: float | None = 600.0,
        handshake_timeout: float = 10.0,
        **options: Any,
    ) -> None:
        options.setdefault("name", "pop3")
        super().__init__(
            lambda: POP3Session(self),
            ssl=ssl_context if implicit_tls else None,
            idle_timeout=autologout,
            **options,
        )
        self.maildirs = maildirs
        self.authenticator = authenticator
        self.ssl_context = None if implicit_tls else ssl_context
        self.failed_login_delay = failed_login_delay
        if login_throttle is None:
            login_throttle = LoginThrottle(
                first_delay=failed_login_delay,
                max_delay=max(30.0, failed_login_delay),
                service="pop3",
            )
        self.login_throttle = login_throttle
        """The per-peer login penalty of this server (see the module docs)."""
        self.handshake_timeout = handshake_timeout
        self.locked: set[str] = set()
        """Users whose maildrop a session holds."""
