"""Sending mail on aiosmtplib, with ``smtplib.sendmail``'s contract for refused recipients.

The tutorial's ``sendmail()`` "either raises an exception (if none of the recipients
is accepted) or returns a dictionary" of refused recipients,
``{address: (code, message)}``.  :func:`send_message` and
:meth:`SMTPClient.send_message` do exactly that, on asyncio::

    refused = await send_message(sender="me@example.org", recipients=[...],
                                 subject="hi", body="hello", port=port)
    # {} when everyone got it; {"x@example.org": (550, "no such user")} otherwise
    # every recipient refused: RecipientsRefused(.refused, .temporary)

The SMTP protocol itself is aiosmtplib's (>= 5.1.2: earlier releases allowed CRLF
injection and a STARTTLS response injection).  What this module adds:

* ``tls``: ``"starttls"`` (required: no STARTTLS means :class:`TLSRequired` and
  nothing is sent), ``"opportunistic"`` (STARTTLS when offered; the default for a
  non-loopback host), ``"implicit"`` (TLS from the first byte, port 465) or
  ``"none"`` (the default on loopback, where the local pair listens);
* per-phase timeouts: ``connect_timeout``, ``timeout`` (each command and its reply,
  the message data included) and ``message_timeout`` (one whole transaction);
* no header injection: headers are set through :class:`email.message.EmailMessage`,
  which refuses CR/LF, and envelope addresses with control characters are refused
  before anything is sent;
* a Message-ID and a Date on every message, kept across retries, so a message
  resent after :class:`MessageNotSent` can be recognised if it arrives twice;
* errors translated in one place (:func:`_smtp_errors`) into :mod:`asyncnet.mail._errors`.
"""

from __future__ import annotations

import contextlib
import email.utils
import ssl as ssl_module
from collections.abc import AsyncIterator, Iterable, Sequence
from email.message import EmailMessage, Message
from typing import Any, Literal, Self, TypeAlias

import aiosmtplib

from .._boundary import network_errors
from .._lifecycle import Endpoint
from ..errors import ConfigurationError, LocalProtocolError, OperationTimeout, format_peer
from ._errors import (
    MailConnectionError,
    MailError,
    MailProtocolError,
    MessageNotSent,
    RecipientsRefused,
    Refused,
    SMTPReplyError,
    TLSRequired,
)

__all__ = ["SMTPClient", "TLSMode", "make_message", "send_message"]

TLSMode: TypeAlias = Literal["starttls", "opportunistic", "implicit", "none"]
"""How an SMTP client uses TLS; ``"starttls"`` makes it required, never a plaintext fallback."""
_TLS_MODES = ("starttls", "opportunistic", "implicit", "none")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _check_address(address: str, what: str) -> str:
    if not isinstance(address, str) or not address.strip():
        raise LocalProtocolError(f"{what} must be a non-empty address, not {address!r}")
    for ch in address:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise LocalProtocolError(
                f"{what} must not contain control characters (CR, LF, NUL...): {address!r}"
            )
    return address


def make_message(
    *,
    sender: str,
    recipients: Sequence[str],
    subject: str,
    body: str,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """Build an :class:`~email.message.EmailMessage`; CR/LF in a header value is refused."""
    message = EmailMessage()
    try:
        message["From"] = sender
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        for name, value in (headers or {}).items():
            message[name] = value
    except ValueError as exc:
        raise LocalProtocolError(f"refused header: {exc}") from exc
    message.set_content(body)
    return message


def _domain_of(address: str) -> str:
    _, addr = email.utils.parseaddr(address)
    domain = addr.rpartition("@")[2]
    # make_msgid() without a domain asks DNS for our FQDN: never do that implicitly.
    return domain if domain and all(c.isalnum() or c in ".-" for c in domain) else "localhost"


def _stamp(message: Message, sender: str | None) -> None:
    """Give the message a Message-ID and a Date once; retries reuse them."""
    if message["Message-ID"] is None:
        message["Message-ID"] = email.utils.make_msgid(domain=_domain_of(sender or ""))
    if message["Date"] is None:
        message["Date"] = email.utils.formatdate(localtime=True)


@contextlib.asynccontextmanager
async def _smtp_errors(
    peer: Any,
    phase: str,
    timeout: float | None,
    *,
    command_timeout: float | None,
    tls_required: bool = False,
) -> AsyncIterator[None]:
    """The one place aiosmtplib's exceptions become asyncnet mail errors.

    ``timeout`` bounds the whole block; ``command_timeout`` is what aiosmtplib was
    given per command (named in the error when one of those expires).
    """
    async with network_errors(peer, phase, timeout):
        try:
            yield
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = {r.recipient: (r.code, r.message) for r in exc.recipients}
            raise RecipientsRefused(refused) from exc
        except aiosmtplib.SMTPTimeoutError as exc:
            raise OperationTimeout(peer, phase, command_timeout) from exc
        except aiosmtplib.SMTPServerDisconnected as exc:
            if phase == "send":
                raise MessageNotSent(
                    f"message not sent: {format_peer(peer)} closed the connection before"
                    f" accepting it ({exc}); sending it again keeps its Message-ID",
                    peer,
                    phase,
                ) from exc
            raise MailConnectionError(
                f"{phase} with {format_peer(peer)} failed: {exc}", peer, phase
            ) from exc
        except aiosmtplib.SMTPConnectError as exc:
            raise MailConnectionError(
                f"connect to {format_peer(peer)} failed: {exc}", peer, "connect"
            ) from exc
        except aiosmtplib.SMTPSenderRefused as exc:
            raise SMTPReplyError(
                f"sender {exc.sender} refused: {exc.code} {exc.message}", code=exc.code
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code < 0:  # aiosmtplib's "invalid response": too long, malformed
                raise MailProtocolError(
                    f"{format_peer(peer)} sent an invalid reply during {phase}: {exc.message}"
                ) from exc
            what = {
                aiosmtplib.SMTPDataError: "message refused",
                aiosmtplib.SMTPAuthenticationError: "login refused",
                aiosmtplib.SMTPHeloError: "greeting refused",
            }.get(type(exc), f"{phase} refused")
            raise SMTPReplyError(f"{what}: {exc.code} {exc.message}", code=exc.code) from exc
        except aiosmtplib.SMTPException as exc:
            text = str(exc)
            if tls_required and "STARTTLS" in text.upper():
                raise TLSRequired(peer, text) from exc
            raise MailError(f"{phase} with {format_peer(peer)}: {text}") from exc


class SMTPClient(Endpoint):
    """One SMTP connection for many messages: ``async with SMTPClient(...) as smtp``.

    ``host`` defaults to loopback; see the module docstring for ``tls`` and the
    timeouts.  ``username``/``password`` log in after the (optional) TLS upgrade.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        tls: TLSMode | None = None,
        ssl_context: ssl_module.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float | None = 30.0,
        connect_timeout: float | None = None,
        message_timeout: float | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if tls is None:
            tls = "none" if host in _LOOPBACK else "opportunistic"
        if tls not in _TLS_MODES:
            raise ConfigurationError(f"tls must be one of {', '.join(_TLS_MODES)}, not {tls!r}")
        if password is not None and username is None:
            raise ConfigurationError("password given without username")
        self.host = host
        self.port = port if port is not None else (465 if tls == "implicit" else 25)
        self.tls: TLSMode = tls
        self.timeout = timeout
        self.connect_timeout = connect_timeout if connect_timeout is not None else timeout
        self.message_timeout = message_timeout
        self.peer = (host, self.port)
        start_tls = {"starttls": True, "opportunistic": None}.get(tls, False)
        self._smtp = aiosmtplib.SMTP(
            hostname=host,
            port=self.port,
            username=username,
            password=password,
            timeout=timeout,
            use_tls=tls == "implicit",
            start_tls=start_tls,
            tls_context=ssl_context,
            # aiosmtplib would ask DNS for our FQDN (getfqdn) for EHLO: not on loopback.
            local_hostname=local_hostname or ("localhost" if host in _LOOPBACK else None),
        )

    @property
    def encrypted(self) -> bool:
        """True when the connection is protected by TLS."""
        return self._smtp.get_transport_info("sslcontext") is not None

    async def start(self) -> Self:
        """Connect, upgrade to TLS as ``tls`` says, and log in."""
        async with _smtp_errors(
            self.peer,
            "connect",
            None,  # aiosmtplib bounds the connect and each command itself
            command_timeout=self.connect_timeout,
            tls_required=self.tls == "starttls",
        ):
            await self._smtp.connect(timeout=self.connect_timeout)
        if self.tls == "starttls" and not self.encrypted:  # belt and braces: never plaintext
            self.close()
            raise TLSRequired(self.peer, "the connection is not encrypted")
        return self

    async def send_message(
        self,
        message: Message,
        *,
        sender: str | None = None,
        recipients: Iterable[str] | None = None,
    ) -> Refused:
        """Send ``message``; return the refused recipients, ``{}`` when all accepted it.

        Raises :class:`RecipientsRefused` when every recipient was refused (with each
        one's reply) and :class:`MessageNotSent` when the connection dropped before
        the server accepted the message.  ``sender``/``recipients`` default to the
        From and To/Cc/Bcc headers (Bcc is never transmitted).
        """
        if sender is not None:
            _check_address(sender, "sender")
        rcpts = None if recipients is None else list(recipients)
        if rcpts is not None:
            if not rcpts:
                raise LocalProtocolError("no recipients given")
            for rcpt in rcpts:
                _check_address(rcpt, "recipient")
        _stamp(message, sender or str(message["From"] or ""))
        async with _smtp_errors(
            self.peer, "send", self.message_timeout, command_timeout=self.timeout
        ):
            try:
                refused, _ = await self._smtp.send_message(message, sender=sender, recipients=rcpts)
            except ValueError as exc:  # aiosmtplib's own address and header checks
                raise LocalProtocolError(str(exc)) from exc
        return {address: (reply.code, reply.message) for address, reply in refused.items()}

    def close(self, grace: float | None = None) -> None:
        """Drop the connection now (no QUIT; ``grace`` unused)."""
        self._smtp.close()

    async def wait_closed(self) -> None:
        """Nothing to wait for: aiosmtplib closes its transport synchronously."""

    async def stop(self, grace: float | None = None) -> None:
        """Say QUIT (bounded by ``grace``, default ``timeout``) and close."""
        if self._smtp.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await self._smtp.quit(timeout=grace if grace is not None else self.timeout)
        self.close()
        await self.wait_closed()


async def send_message(
    message: Message | None = None,
    *,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
    subject: str | None = None,
    body: str | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    **options: Any,
) -> Refused:
    """Connect, send one message and QUIT; returns the refused recipients like ``sendmail``.

    Pass an :class:`~email.message.EmailMessage`, or ``sender``, ``recipients``,
    ``subject`` and ``body`` to have one built.  ``options`` go to :class:`SMTPClient`.
    """
    rcpts = None if recipients is None else list(recipients)
    if message is None:
        if sender is None or not rcpts:
            raise ConfigurationError("send_message() needs a message, or sender and recipients")
        message = make_message(
            sender=sender, recipients=rcpts, subject=subject or "", body=body or ""
        )
    elif subject is not None or body is not None:
        raise ConfigurationError("give either a message or subject/body, not both")
    async with SMTPClient(host, port, **options) as client:
        return await client.send_message(message, sender=sender, recipients=rcpts)
