"""SASL for POP3's AUTH command (RFC 5034), without I/O.

The client's side of four mechanisms, each a small object that turns the server's
challenges into responses (:class:`SASLClient`), and the server's checks for the
two it offers (:func:`parse_plain`, :func:`cram_md5_digest`):

* ``PLAIN`` (RFC 4616) -- the user name and password themselves, in one response;
* ``LOGIN`` -- the same two, one per challenge (no RFC; every server has it);
* ``CRAM-MD5`` (RFC 2195) -- an HMAC-MD5 of the server's challenge keyed with the
  password: the password never crosses the wire, but the server must hold it in
  plain text;
* ``XOAUTH2`` (Google's and Microsoft's) -- an OAuth 2.0 bearer token instead of a
  password.

``PLAIN``, ``LOGIN`` and ``XOAUTH2`` send the secret itself (:data:`SENDS_SECRET`):
the client refuses them over a connection that is not encrypted unless told
otherwise (see :class:`~asyncnet.mail._pop3.client.POP3Client`).

Responses go on the wire base64-encoded (RFC 5034 section 4); a response that
would make ``AUTH mech initial-response`` longer than POP3's 255-octet command
line is sent after the server's first ``+`` instead, as the RFC asks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Final

from ...errors import LocalProtocolError
from .._errors import POP3ProtocolError
from .protocol import MAX_COMMAND_LENGTH

__all__ = [
    "MECHANISMS",
    "SENDS_SECRET",
    "SASLClient",
    "cram_md5_digest",
    "decode_response",
    "encode_response",
    "parse_plain",
]

MECHANISMS: Final = ("PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2")
"""The mechanisms the client speaks (names as CAPA's ``SASL`` line spells them)."""

SENDS_SECRET: Final = frozenset({"PLAIN", "LOGIN", "XOAUTH2"})
"""Mechanisms that send the password (or token) itself, readable without TLS."""

_MAX_CHALLENGES: Final = 4
"""More challenges than any of the four mechanisms needs: a server that keeps asking
is broken or hostile, and the exchange stops rather than answering forever."""


def encode_response(data: bytes) -> str:
    """A response as it goes on the wire: base64, or ``=`` for an empty initial response."""
    return base64.b64encode(data).decode("ascii")


def decode_response(text: str) -> bytes:
    """Decode a base64 line (a challenge, or a client's response); ``ValueError`` if it is not."""
    text = text.strip()
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"not base64: {text[:40]!r}") from exc


def _text(value: str, what: str, forbidden: str = "\0") -> bytes:
    for char in forbidden:
        if char in value:
            raise LocalProtocolError(f"{what} must not contain {char!r}")
    return value.encode("utf-8")


class SASLClient:
    """One client-side SASL exchange: :meth:`command`, then :meth:`respond` per challenge.

    ``secret`` is the password, or for ``XOAUTH2`` the access token.  ``authzid``
    (PLAIN only) asks to act as another user; empty (the default) means ``user``.
    Characters a mechanism cannot carry (NUL in PLAIN, ^A in XOAUTH2) are refused
    with :class:`~asyncnet.errors.LocalProtocolError` before anything is sent.
    """

    def __init__(self, mechanism: str, user: str, secret: str, *, authzid: str = "") -> None:
        name = mechanism.upper()
        if name not in MECHANISMS:
            raise LocalProtocolError(
                f"unknown SASL mechanism {mechanism!r}: use one of {', '.join(MECHANISMS)}"
            )
        self.mechanism = name
        self._user = user
        self._secret = secret
        self._initial: bytes | None = None
        if name == "PLAIN":
            self._initial = b"\0".join(
                (
                    _text(authzid, "authzid"),
                    _text(user, "user name"),
                    _text(secret, "password"),
                )
            )
        elif name == "XOAUTH2":
            user_bytes = _text(user, "user name", "\0\1")
            token = _text(secret, "token", "\0\1 ")
            self._initial = b"user=" + user_bytes + b"\1auth=Bearer " + token + b"\1\1"
        elif name == "CRAM-MD5":
            _text(user, "user name")
        self._sent_initial = False
        self._challenges = 0
        self.server_error: bytes | None = None
        """XOAUTH2: the error the server explained in a last challenge (JSON), if any."""

    @property
    def sends_secret(self) -> bool:
        """True if the password (or token) itself goes over the wire."""
        return self.mechanism in SENDS_SECRET

    def command(self) -> tuple[str, ...]:
        """The ``AUTH`` command's words: with the initial response when it fits.

        RFC 5034: an initial response that would take the command past 255 octets
        is sent in answer to the server's first (empty) challenge instead.
        """
        if self._initial is not None:
            encoded = encode_response(self._initial) or "="
            if len(f"AUTH {self.mechanism} {encoded}\r\n") <= MAX_COMMAND_LENGTH:
                self._sent_initial = True
                return ("AUTH", self.mechanism, encoded)
        return ("AUTH", self.mechanism)

    def respond(self, challenge: bytes) -> bytes:
        """The response to the server's next challenge (raw bytes, before base64).

        A challenge the mechanism does not expect is a
        :class:`~asyncnet.mail._errors.POP3ProtocolError`, except XOAUTH2's error
        challenge, which gets the empty response the protocol asks for (the server
        then answers ``-ERR``; the challenge is kept in :attr:`server_error`).
        """
        self._challenges += 1
        if self._challenges > _MAX_CHALLENGES:
            raise POP3ProtocolError(f"AUTH {self.mechanism}: the server sent too many challenges")
        step = self._challenges - (0 if self._sent_initial else 1)
        if self.mechanism == "LOGIN":
            if step > 1:
                return self._unexpected(challenge)
            return (self._user if step == 0 else self._secret).encode("utf-8")
        if self.mechanism == "CRAM-MD5":
            if step > 0:
                return self._unexpected(challenge)
            digest = cram_md5_digest(self._secret, challenge)
            return f"{self._user} {digest}".encode()
        assert self._initial is not None  # PLAIN and XOAUTH2 have one
        if step == 0 and not self._sent_initial:
            return self._initial  # the server asked for what did not fit in the command
        if self.mechanism == "XOAUTH2":
            # The token was refused: the challenge is a JSON explanation, and the client
            # must answer with an empty response before the server sends its -ERR.
            self.server_error = challenge[:1024]
            return b""
        return self._unexpected(challenge)

    def _unexpected(self, challenge: bytes) -> bytes:
        shown = challenge[:60].decode("utf-8", "backslashreplace")
        raise POP3ProtocolError(f"AUTH {self.mechanism}: unexpected challenge {shown!r}")


def cram_md5_digest(secret: str, challenge: bytes) -> str:
    """RFC 2195: the hex HMAC-MD5 of ``challenge`` keyed with ``secret``."""
    return hmac.new(secret.encode("utf-8"), challenge, hashlib.md5).hexdigest()


def parse_plain(response: bytes) -> tuple[str, str, str]:
    """A PLAIN response -> ``(authzid, user, password)``; ``ValueError`` if malformed."""
    parts = response.split(b"\0")
    if len(parts) != 3 or not parts[1]:
        raise ValueError("PLAIN response is not authzid NUL user NUL password")
    authzid, user, password = (part.decode("utf-8") for part in parts)
    return authzid, user, password
