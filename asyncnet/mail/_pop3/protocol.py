"""Sans-IO POP3 client protocol (RFC 1939, RFC 2449 CAPA and PIPELINING,
RFC 2595 STLS, RFC 5034 AUTH).

:class:`POP3Protocol` turns commands into bytes (:meth:`POP3Protocol.send_command`)
and received bytes into events (:meth:`POP3Protocol.receive_data`,
:meth:`POP3Protocol.next_event`), and never touches a socket, so every byte
split of a server's reply can be tested without one.  Events, in order, for
each command (and for the greeting, which is a reply to no command):

* :class:`Status` -- the ``+OK``/``-ERR`` line;
* for a multi-line command answered ``+OK``: :class:`BodyChunk` events (the
  unstuffed body, byte-exact, CRLF as on the wire) and then :class:`BodyEnd`;
* :class:`Continuation` -- for ``AUTH`` (RFC 5034) only: the server's ``+ challenge``
  line, base64-decoded; the client answers with :meth:`POP3Protocol.send_sasl_response`
  (or cancels with :meth:`POP3Protocol.cancel_sasl`) and the same command's reply
  follows: another continuation, or its :class:`Status`;
* :class:`Closed` -- the input ended (:meth:`POP3Protocol.receive_eof`) before the
  reply awaited was complete.  End of input is an event, not an error: what it
  means for the session is the client's to say (it raises its connection error).

The line splitting and dot-unstuffing are the core's
(:class:`asyncnet.protocols._lines.LineBuffer`); this module adds POP3's rules
and its limits:

* ``max_line_length`` bounds every line (status and body), ``max_response_size``
  every listing (LIST, UIDL, CAPA) and ``max_message_size`` every message (RETR,
  TOP).  A message is also refused when it grows well past the size its ``+OK``
  line announced (``+OK 10 octets`` followed by 50 MB).  Crossing a limit raises
  :class:`~asyncnet.mail._errors.POP3ProtocolError` and the protocol is dead;
* a status line that is neither ``+OK`` nor ``-ERR`` is a protocol error (the
  parser raises protocol errors only);
* CR, LF and NUL in a command argument are refused before anything is encoded.

The parsers for the replies' contents (:func:`parse_stat`, :func:`parse_listing`,
:func:`parse_uidl`, :func:`parse_uidl_reply`, :func:`parse_capa`, :func:`apop_timestamp`)
are plain functions.
"""

from __future__ import annotations

import base64
import binascii
import collections
import re
from dataclasses import dataclass
from typing import Final

from ...errors import FrameTooLarge, IncompleteFrame, LineTooLong, LocalProtocolError
from ...protocols import (
    END_OF_BODY,
    EOF,
    NEED_DATA,
    LineBuffer,
    NeedData,
    check_line_argument,
)
from .._errors import POP3ProtocolError

__all__ = [
    "NEED_DATA",
    "BodyChunk",
    "BodyEnd",
    "Closed",
    "Continuation",
    "Event",
    "POP3Protocol",
    "Status",
    "apop_timestamp",
    "encode_command",
    "parse_capa",
    "parse_listing",
    "parse_stat",
    "parse_uidl",
    "parse_uidl_reply",
]

MAX_COMMAND_LENGTH: Final = 255
"""RFC 2449: a command line is at most 255 octets, CRLF included."""

MAX_UID_LENGTH: Final = 70
"""RFC 1939: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E."""


@dataclass(frozen=True, slots=True)
class Status:
    """A status line: ``ok`` for ``+OK``; ``text`` is the rest of the line."""

    ok: bool
    text: str


@dataclass(frozen=True, slots=True)
class BodyChunk:
    """Part of a multi-line reply's body: complete lines, unstuffed."""

    data: bytes


@dataclass(frozen=True, slots=True)
class BodyEnd:
    """The multi-line reply's terminating ``.`` has arrived."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The input ended before the reply awaited was complete.

    ``reply`` names that reply (the command it answers, ``"greeting"``, or
    ``"reply"`` when the status line itself was cut); ``description`` says where
    it ended, in words a connection error can carry.  Once the input has ended,
    every later :meth:`POP3Protocol.next_event` returns this same event.
    """

    reply: str
    description: str


@dataclass(frozen=True, slots=True)
class Continuation:
    """A SASL challenge (``+ base64``) in the middle of an ``AUTH`` reply, decoded."""

    data: bytes


Event = Status | BodyChunk | BodyEnd | Closed | Continuation


def encode_command(verb: str, *args: str) -> bytes:
    """``VERB arg...\\r\\n`` as bytes; CR/LF/NUL or an over-long line raise ``ValueError``.

    The errors are :class:`~asyncnet.errors.LocalProtocolError` (a ``ValueError``):
    nothing has been sent when they are raised.
    """
    if not verb.isascii() or not verb.isalpha():
        raise LocalProtocolError(f"POP3 verb must be ASCII letters: {verb!r}")
    for arg in args:
        check_line_argument(arg, f"{verb} argument")
        if not arg or " " in arg:
            raise LocalProtocolError(f"{verb} argument must be one non-empty word: {arg!r}")
    line = " ".join((verb.upper(), *args)).encode("utf-8") + b"\r\n"
    if len(line) > MAX_COMMAND_LENGTH:
        raise LocalProtocolError(
            f"{verb} command is {len(line)} bytes, over POP3's {MAX_COMMAND_LENGTH}"
        )
    return line


def parse_status(line: bytes) -> Status:
    """Parse a status line; anything but ``+OK``/``-ERR`` is a :class:`POP3ProtocolError`."""
    for prefix, ok in ((b"+OK", True), (b"-ERR", False)):
        if line.startswith(prefix):
            rest = line[len(prefix) :]
            if rest and rest[:1] != b" ":
                break  # "+OKAY" is not "+OK"
            return Status(ok, rest[1:].decode("utf-8", "replace"))
    shown = line[:80].decode("ascii", "backslashreplace")
    raise POP3ProtocolError(f"not a POP3 status line (no +OK or -ERR): {shown!r}")


def _int_field(word: str, what: str) -> int:
    if not word.isascii() or not word.isdigit() or len(word) > 20:
        raise POP3ProtocolError(f"{what} is not a number: {word[:40]!r}")
    return int(word)


def parse_stat(text: str) -> tuple[int, int]:
    """``+OK 2 320`` -> ``(2, 320)``: message count and total size in octets."""
    words = text.split()
    if len(words) < 2:
        raise POP3ProtocolError(f"STAT reply without count and size: {text[:80]!r}")
    return _int_field(words[0], "STAT count"), _int_field(words[1], "STAT size")


def parse_listing(body: bytes, what: str = "LIST") -> dict[int, int]:
    """A LIST body -> ``{message number: size}``; duplicates are a protocol error."""
    result: dict[int, int] = {}
    for line in body.decode("ascii", "replace").splitlines():
        words = line.split()
        if len(words) < 2:
            raise POP3ProtocolError(f"{what} line without number and size: {line[:80]!r}")
        number = _int_field(words[0], f"{what} message number")
        if number in result:
            raise POP3ProtocolError(f"{what} lists message {number} twice")
        result[number] = _int_field(words[1], f"{what} size")
    return result


def check_uid(uid: str) -> str:
    """Return ``uid`` if it is a valid RFC 1939 unique-id, else raise POP3ProtocolError."""
    if not 1 <= len(uid) <= MAX_UID_LENGTH:
        raise POP3ProtocolError(f"UIDL unique-id of {len(uid)} characters (1 to 70 allowed)")
    if not all("\x21" <= c <= "\x7e" for c in uid):
        raise POP3ProtocolError(f"UIDL unique-id with characters outside 0x21-0x7E: {uid!r}")
    return uid


def parse_uidl_line(text: str) -> tuple[int, str]:
    """``1 whqtswO00WBw418f9t5JxYwZ`` -> ``(1, "whqtswO00WBw418f9t5JxYwZ")``."""
    words = text.split(" ")
    if len(words) != 2:
        raise POP3ProtocolError(f"UIDL line is not 'number unique-id': {text[:80]!r}")
    return _int_field(words[0], "UIDL message number"), check_uid(words[1])


def parse_uidl_reply(text: str, number: int) -> tuple[int, str]:
    """The ``+OK`` text of ``UIDL number`` -> ``(number, unique-id)``.

    RFC 1939 answers ``+OK n uid``; twisted.mail.pop3 answers ``+OK uid``.  The reply
    is for the message asked for, so one word is its unique-id; two words must name
    that message.  Anything else is a :class:`POP3ProtocolError`.
    """
    words = text.split(" ")
    if len(words) == 1:
        return number, check_uid(words[0])
    found, uid = parse_uidl_line(text)
    if found != number:
        raise POP3ProtocolError(f"UIDL {number} answered for message {found}: {text[:80]!r}")
    return found, uid


def parse_uidl(body: bytes) -> dict[int, str]:
    """A UIDL body -> ``{message number: unique-id}``; duplicate numbers or ids are refused."""
    result: dict[int, str] = {}
    seen: set[str] = set()
    for line in body.decode("ascii", "replace").splitlines():
        number, uid = parse_uidl_line(line)
        if number in result:
            raise POP3ProtocolError(f"UIDL lists message {number} twice")
        if uid in seen:
            raise POP3ProtocolError(f"UIDL gives two messages the same unique-id {uid!r}")
        seen.add(uid)
        result[number] = uid
    return result


def parse_capa(body: bytes) -> dict[str, list[str]]:
    """A CAPA body -> ``{"TOP": [], "SASL": ["PLAIN"], ...}`` (names upper-cased)."""
    result: dict[str, list[str]] = {}
    for line in body.decode("utf-8", "replace").splitlines():
        words = line.split()
        if words:
            result[words[0].upper()] = words[1:]
    return result


# Linear time on any input: "[^<>\s]" cannot run past the next "<", so no start
# position is scanned twice (a greeting of a million "<" costs one pass).
_TIMESTAMP = re.compile(r"<[^<>\s]*@[^<>\s]*>")


def apop_timestamp(greeting: str) -> str | None:
    """The ``<...@...>`` timestamp of an APOP-capable greeting, or ``None``."""
    match = _TIMESTAMP.search(greeting)
    return match.group(0) if match else None


def decode_challenge(text: bytes) -> bytes:
    """The base64 text of a ``+ challenge`` line, decoded; a protocol error if it is not base64."""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        shown = text[:60].decode("ascii", "backslashreplace")
        raise POP3ProtocolError(f"AUTH challenge is not base64: {shown!r}") from None


def announced_octets(text: str) -> int | None:
    """The size a RETR ``+OK`` announces (``+OK 120 octets``), if it does."""
    word = text.split(" ", 1)[0]
    return int(word) if word.isascii() and word.isdigit() and len(word) < 20 else None


@dataclass(slots=True)
class _Pending:
    command: str
    multiline: bool
    limit: int | None
    announced: bool  # the +OK may announce the body's size (RETR)
    sasl: bool = False  # AUTH: "+ challenge" lines may come before the status


class POP3Protocol:
    """The client side of a POP3 session, without I/O."""

    def __init__(
        self,
        *,
        max_line_length: int = 8 * 1024,
        max_response_size: int = 16 * 1024 * 1024,
        max_message_size: int = 64 * 1024 * 1024,
        peer: object = None,
        expect_greeting: bool = True,
    ) -> None:
        self.max_response_size = max_response_size
        self.max_message_size = max_message_size
        self.peer = peer
        self._lines = LineBuffer(max_line_length, peer=peer)
        self._pending: collections.deque[_Pending] = collections.deque()
        if expect_greeting:  # False after STLS: the session goes on, no new greeting
            self._pending.append(_Pending("greeting", False, None, False))
        self._body: _Pending | None = None
        self._body_size = 0
        self._body_cap: int | None = None
        self._closed: Closed | None = None

    @property
    def expecting(self) -> int:
        """Replies still to come (the greeting counts as one)."""
        return len(self._pending) + (1 if self._body is not None else 0)

    def send_command(
        self, verb: str, *args: str, multiline: bool = False, message: bool = False
    ) -> bytes:
        """Encode a command and remember which reply shape to expect for it.

        ``multiline``: a ``+OK`` starts a dot-terminated body; ``message``: that
        body is a message (RETR/TOP: ``max_message_size``) rather than a listing.
        ``AUTH`` expects SASL challenges (:class:`Continuation`) before its status.
        """
        data = encode_command(verb, *args)
        limit = self.max_message_size if message else self.max_response_size
        upper = verb.upper()
        self._pending.append(
            _Pending(upper, multiline, limit if multiline else None, message, upper == "AUTH")
        )
        return data

    def _sasl_head(self, what: str) -> _Pending:
        if self._body is None and self._pending and self._pending[0].sasl:
            return self._pending[0]
        raise LocalProtocolError(f"{what}: no AUTH exchange is waiting for a response")

    def send_sasl_response(self, data: bytes) -> bytes:
        """The line answering a :class:`Continuation`: ``data`` base64-encoded.

        RFC 5034 puts no 255-octet limit on this line (a token can be longer than a
        command may be); base64 cannot carry CR, LF or NUL into it.
        """
        self._sasl_head("a SASL response")
        return base64.b64encode(data) + b"\r\n"

    def cancel_sasl(self) -> bytes:
        """``*``: abandon the AUTH exchange (the server answers ``-ERR``)."""
        self._sasl_head("cancelling SASL")
        return b"*\r\n"

    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the server."""
        try:
            self._lines.feed(data)
        except LineTooLong as exc:
            raise POP3ProtocolError(f"reply line too long: {exc}") from exc

    def receive_eof(self) -> None:
        """The server closed the connection."""
        self._lines.feed_eof()

    def discard_buffered(self) -> int:
        """Drop unread bytes (what a server sent after ``+OK`` to STLS, in plaintext)."""
        return len(self._lines.take_bytes())

    def next_event(self) -> Event | NeedData:
        """The next event, or :data:`NEED_DATA`; raises on a protocol violation only."""
        if self._closed is not None:
            return self._closed
        try:
            if self._body is not None:
                return self._next_body_event(self._body)
            line = self._lines.next_line()
        except LineTooLong as exc:
            raise POP3ProtocolError(f"reply line too long: {exc}") from exc
        except FrameTooLarge as exc:
            raise POP3ProtocolError(f"reply too large: {exc}") from exc
        except IncompleteFrame:
            what = self._body.command if self._body else "reply"
            return self._close(what, f"connection closed in the middle of the {what} reply")
        if line is NEED_DATA:
            return NEED_DATA
        if line is EOF:
            what = self._pending[0].command if self._pending else "command"
            return self._close(what, f"connection closed while waiting for the {what} reply")
        if self._lines.last_line_unterminated:
            return self._close("reply", "connection closed in the middle of a status line")
        if not self._pending:
            raise POP3ProtocolError(f"unsolicited reply from the server: {line[:80]!r}")
        pending = self._pending[0]
        if pending.sasl and line[:1] == b"+" and line[1:2] in (b"", b" "):
            # "+OK" has no space after the "+": this is a challenge, and the AUTH
            # reply is still to come.
            return Continuation(decode_challenge(line[2:]))
        self._pending.popleft()
        status = parse_status(line)
        if status.ok and pending.multiline:
            cap = pending.limit
            if pending.announced and (octets := announced_octets(status.text)) is not None:
                # Servers count octets a little differently (LF vs CRLF); a body far
                # past its announced size is a hostile or broken server, not a rounding.
                slack = 2 * octets + 64 * 1024
                cap = slack if cap is None else min(cap, slack)
            self._body, self._body_size, self._body_cap = pending, 0, cap
            self._lines.start_dot_body()
        return status

    def _close(self, reply: str, description: str) -> Closed:
        self._closed = Closed(reply, description)
        return self._closed

    def _next_body_event(self, pending: _Pending) -> Event | NeedData:
        chunk = self._lines.next_body_chunk()
        if chunk is NEED_DATA:
            return NEED_DATA
        if chunk is END_OF_BODY:
            self._body = None
            return BodyEnd()
        self._body_size += len(chunk)
        if self._body_cap is not None and self._body_size > self._body_cap:
            raise POP3ProtocolError(
                f"{pending.command} reply larger than allowed: over {self._body_cap} bytes"
            )
        return BodyChunk(chunk)
