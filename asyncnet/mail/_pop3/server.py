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
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import logging
import os
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Protocol

from ...protocols import dot_stuff
from ...servers import CommandHandler, LoginThrottle, StreamServer
from .._maildir import Maildirs, MaildropEntry
from .sasl import cram_md5_digest, decode_response, encode_response, parse_plain

__all__ = ["Authenticator", "POP3Server", "POP3Session", "PasswordAuthenticator"]

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

    async def _read(self, entry: MaildropEntry) -> bytes | None:
        assert self.locked_user is not None
        try:
            return await asyncio.to_thread(self.pop3.maildirs.read, self.locked_user, entry.key)
        except (KeyError, FileNotFoundError):
            return None

    async def do_RETR(self, args: str) -> str:
        """RETR n: the whole message, dot-stuffed."""
        found = self._message(args)
        if isinstance(found, str):
            return found
        _, entry = found
        data = await self._read(entry)
        if data is None:
            return "-ERR message was removed by someone else"
        return self._multiline(f"+OK {len(data)} octets", data)

    async def do_TOP(self, args: str) -> str:
        """TOP n lines: the headers and the first ``lines`` lines of the body."""
        words = args.split(" ")
        if len(words) != 2 or not words[1].isascii() or not words[1].isdigit():
            return "-ERR usage: TOP message lines"
        found = self._message(words[0])
        if isinstance(found, str):
            return found
        data = await self._read(found[1])
        if data is None:
            return "-ERR message was removed by someone else"
        head, sep, body = data.partition(b"\r\n\r\n")
        lines = body.splitlines(keepends=True)[: int(words[1])]
        return self._multiline("+OK top of message follows", head + sep + b"".join(lines))

    @staticmethod
    def _multiline(status: str, body: bytes) -> str:
        # dot_stuff ends with ".\r\n"; the connection adds the final CRLF itself.
        stuffed = dot_stuff(body)[:-2].decode("utf-8", "surrogateescape")
        return f"{status}\r\n{stuffed}"

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
