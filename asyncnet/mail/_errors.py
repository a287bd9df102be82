"""Mail errors: what the server said no to, what it got wrong, and what the network did.

Every class derives from the matching :mod:`asyncnet.errors` class, so an
``except NetworkError`` or ``except PeerProtocolError`` written for the rest of
asyncnet catches the mail ones too:

* :class:`ReplyError` -- the server answered, and the answer was "no" (an SMTP
  4xx/5xx reply, a POP3 ``-ERR``).  ``temporary`` tells a 4xx ("try again later")
  from a 5xx ("never").
* :class:`RecipientsRefused` -- every recipient of a message was refused; carries
  each recipient's ``(code, message)`` exactly like :func:`smtplib.SMTP.sendmail`'s
  return value.
* :class:`MailProtocolError` -- the server broke the protocol (a malformed status
  line, an over-long reply, a duplicate UIDL).
* :class:`MailConnectionError` -- the connection failed or dropped mid-command;
  ``sent`` says whether the message may have been delivered anyway.
* :class:`TLSRequired` -- TLS was required and could not be had: nothing was sent
  in plaintext.
"""

from __future__ import annotations

from typing import Any

from ..errors import AsyncNetError, NetworkError, PeerProtocolError, format_peer

__all__ = [
    "MailConnectionError",
    "MailError",
    "MailProtocolError",
    "MessageNotSent",
    "POP3ConnectionError",
    "POP3Error",
    "POP3ProtocolError",
    "POP3ReplyError",
    "RecipientsRefused",
    "Refused",
    "ReplyError",
    "SMTPReplyError",
    "TLSRequired",
    "split_refused",
]

Refused = dict[str, tuple[int, str]]
"""``{address: (code, message)}``: what ``smtplib.SMTP.sendmail`` returns for refused recipients."""


class MailError(AsyncNetError):
    """Root of the mail package's errors: ``except MailError`` catches every class here."""


class ReplyError(MailError):
    """The server refused a command (SMTP 4xx/5xx, POP3 ``-ERR``)."""

    def __init__(self, message: str, *, code: int | None = None, reply: str = "") -> None:
        self.code = code
        self.reply = reply
        super().__init__(message)

    @property
    def temporary(self) -> bool:
        """True for a transient refusal (SMTP 4xx; POP3 ``[IN-USE]``/``[SYS/TEMP]``)."""
        if self.code is not None:
            return 400 <= self.code < 500
        return self.reply.startswith(("[IN-USE]", "[SYS/TEMP]"))


class SMTPReplyError(ReplyError):
    """An SMTP server refused the sender, the message data, a login or a greeting."""


def split_refused(refused: Refused) -> tuple[Refused, Refused]:
    """Split a refused mapping into (temporary 4xx, permanent 5xx and anything else)."""
    temporary = {a: r for a, r in refused.items() if 400 <= r[0] < 500}
    permanent = {a: r for a, r in refused.items() if a not in temporary}
    return temporary, permanent


class RecipientsRefused(SMTPReplyError):
    """Every recipient was refused: nothing was sent (``smtplib.SMTPRecipientsRefused``)."""

    def __init__(self, refused: Refused) -> None:
        self.refused = dict(refused)
        """``{address: (code, message)}`` for every recipient."""
        self.temporary_failures, self.permanent_failures = split_refused(self.refused)
        shown = "; ".join(f"{a}: {c} {m}" for a, (c, m) in self.refused.items())
        codes = {c for c, _ in self.refused.values()}
        super().__init__(
            f"all {len(self.refused)} recipient(s) refused: {shown}",
            code=min(codes) if len(codes) == 1 else None,
        )

    @property
    def temporary(self) -> bool:
        """True if every refusal was a 4xx: the whole message is worth retrying later."""
        return not self.permanent_failures


class MailProtocolError(MailError, PeerProtocolError):
    """The mail server sent something its protocol does not allow."""


class MailConnectionError(MailError, NetworkError):
    """The mail connection failed or dropped before the server's answer."""


class MessageNotSent(MailConnectionError):
    """The connection dropped before the server accepted the message.

    Without the server's final ``250`` the message counts as not sent, so sending
    it again is right; :func:`asyncnet.mail._smtp.send_message` keeps its
    Message-ID, so in the rare case where the server did deliver and only its
    reply was lost, the duplicate can be recognised (at-least-once delivery).
    """


class TLSRequired(MailError, NetworkError):
    """TLS was required but the server does not offer it (or the upgrade failed)."""

    def __init__(self, peer: Any, detail: str) -> None:
        super().__init__(
            f"TLS required but not available with {format_peer(peer)}: {detail}"
            " (nothing was sent in plaintext)",
            peer,
            "starttls",
        )


class POP3Error(MailError):
    """Root of the POP3 errors."""


class POP3ReplyError(POP3Error, ReplyError):
    """The POP3 server answered ``-ERR``."""

    def __init__(self, command: str, reply: str) -> None:
        self.command = command
        super().__init__(f"{command} refused: -ERR {reply}".rstrip(), reply=reply)


class POP3ProtocolError(POP3Error, MailProtocolError):
    """The POP3 server broke RFC 1939 (no ``+OK``/``-ERR``, a bad listing, limits)."""


class POP3ConnectionError(POP3Error, MailConnectionError):
    """The POP3 connection failed or dropped (mid-RETR, before a reply...)."""
