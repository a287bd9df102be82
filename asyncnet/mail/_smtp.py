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

* ``tls``: ``"opportunistic"`` (the default, loopback included: STARTTLS whenever the
  server offers it; a server that offers it and then fails it is an error, never a
  plaintext fallback), ``"starttls"`` (required: no STARTTLS means
  :class:`TLSRequired` and nothing is sent), ``"implicit"`` (TLS from the first
  byte, port 465) or ``"none"`` (never TLS);
* ``ssl``: the TLS settings every asyncnet client takes (``SSLContext | bool |
  None``, see :mod:`asyncnet._tls`): ``None``/``True`` verify against the system's
  CAs, a context is used as given (a private CA, a client certificate), ``False`` is
  no TLS at all;
* AUTH never in cleartext: with a ``username`` and no TLS after the upgrade step, the
  client refuses to log in (:class:`TLSRequired`, nothing sent) unless ``tls="none"``
  was asked for;
* per-phase timeouts: ``connect_timeout``, ``timeout`` (each command and its reply,
  the message data included) and ``message_timeout`` (one whole transaction);
* the envelope from the message when none is given (:func:`message_envelope`, as
  ``smtplib.send_message``: Sender or From; To, Cc and Bcc, or their ``Resent-``
  block), checked before connecting; Bcc is never transmitted;
* no header injection: headers are set through :class:`email.message.EmailMessage`,
  which refuses CR/LF in values, names are checked here, and envelope addresses with
  control characters are refused before anything is sent;
* a Message-ID and a Date on every message, kept across retries, so a message
  resent after :class:`MessageNotSent` can be recognised if it arrives twice;
* errors translated in one place (:func:`_smtp_errors`) into :mod:`asyncnet.mail._errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import re
import ssl as ssl_module
from collections.abc import AsyncIterator, Iterable, Sequence
from email.message import EmailMessage, Message
from typing import Any, Literal, Self, TypeAlias

import aiosmtplib

from .._boundary import network_errors
from .._lifecycle import Endpoint
from .._tls import SSLSetting, resolve_ssl
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

__all__ = ["SMTPClient", "TLSMode", "make_message", "message_envelope", "send_message"]

logger = logging.getLogger("asyncnet.mail")

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


# RFC 5322 2.2: a field name is printable US-ASCII except the colon (no space either).
_FIELD_NAME = re.compile(r"[!-9;-~]+")


def _check_header_name(name: str) -> str:
    if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
        raise LocalProtocolError(
            f"not a header name: {name!r} (printable ASCII without spaces or a colon)"
        )
    return name


def make_message(
    *,
    sender: str,
    recipients: Sequence[str],
    subject: str,
    body: str,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """Build an :class:`~email.message.EmailMessage`; CR/LF in a header is refused."""
    message = EmailMessage()
    try:
        message["From"] = sender
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        for name, value in (headers or {}).items():
            message[_check_header_name(name)] = value
    except ValueError as exc:
        raise LocalProtocolError(f"refused header: {exc}") from exc
    message.set_content(body)
    return message


def _addresses(message: Message, names: Sequence[str]) -> list[str]:
    """The addr-specs in every occurrence of the ``names`` headers (groups included)."""
    found: list[str] = []
    for name in names:
        for value in message.get_all(name, []):
            parsed = getattr(value, "addresses", None)  # an EmailMessage's AddressHeader
            if parsed is not None:
                found.extend(a.addr_spec for a in parsed if a.username)
            else:
                found.extend(addr for _, addr in email.utils.getaddresses([str(value)]) if addr)
    return found


def message_envelope(message: Message) -> tuple[str | None, list[str]]:
    """The envelope ``smtplib.send_message`` takes from headers: ``(sender, recipients)``.

    Sender: the Sender header, else From; recipients: To, Cc and Bcc, each address
    once, in order.  A message with one ``Resent-`` block (it was forwarded) uses that
    block's Resent-Sender/From and Resent-To/Cc/Bcc instead.  The sender is ``None``
    and the list empty when the headers name none.
    """
    resent = message.get_all("Resent-Date", [])
    if len(resent) > 1:
        raise LocalProtocolError(
            "the message has more than one Resent- block: give the sender and recipients"
        )
    prefix = "Resent-" if resent else ""
    senders = _addresses(message, [f"{prefix}Sender"]) or _addresses(message, [f"{prefix}From"])
    recipients = _addresses(message, [f"{prefix}To", f"{prefix}Cc", f"{prefix}Bcc"])
    return (senders[0] if senders else None), list(dict.fromkeys(recipients))


def _envelope(
    message: Message, sender: str | None, recipients: Iterable[str] | None
) -> tuple[str, list[str]]:
    """The envelope to send with: the arguments, else the message's headers; checked."""
    from_headers: str | None = None
    to_headers: list[str] = []
    if sender is None or recipients is None:
        from_headers, to_headers = message_envelope(message)
    envelope_sender = sender if sender is not None else from_headers
    if envelope_sender is None:
        raise LocalProtocolError("no sender: the message has no From (or Sender) header")
    rcpts = list(recipients) if recipients is not None else to_headers
    if not rcpts:
        what = "given" if recipients is not None else "in the message's To, Cc or Bcc"
        raise LocalProtocolError(f"no recipients {what}")
    _check_address(envelope_sender, "sender")
    for rcpt in rcpts:
        _check_address(rcpt, "recipient")
    return envelope_sender, rcpts


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
        except ssl_module.SSLError as exc:
            raise _tls_failure(peer, phase, exc) from exc
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
            if isinstance(exc.__cause__, ssl_module.SSLError):  # implicit TLS's handshake
                raise _tls_failure(peer, phase, exc.__cause__) from exc
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


def _tls_failure(peer: Any, phase: str, exc: ssl_module.SSLError) -> MailConnectionError:
    """A TLS failure, in words: which certificate check failed, or what broke."""
    reason = (exc.reason or str(exc)).lower().replace("_", " ")
    if isinstance(exc, ssl_module.SSLCertVerificationError):
        detail = exc.verify_message or reason
        text = f"TLS with {format_peer(peer)} failed: the server's certificate was not accepted"
        return MailConnectionError(f"{text}: {detail}", peer, "tls")
    if phase in ("connect", "starttls"):
        text = f"TLS with {format_peer(peer)} failed: the handshake failed: {reason}"
        return MailConnectionError(text, peer, "tls")
    if phase == "send":
        text = f"message not sent: TLS with {format_peer(peer)} failed: {reason}"
        return MessageNotSent(text, peer, phase)
    return MailConnectionError(
        f"{phase} with {format_peer(peer)}: TLS failed: {reason}", peer, phase
    )


class SMTPClient(Endpoint):
    """One SMTP connection for many messages: ``async with SMTPClient(...) as smtp``.

    ``host`` defaults to loopback; see the module docstring for ``tls``, ``ssl`` and
    the timeouts (``ssl_context`` is the older name of ``ssl=`` a context).
    ``username``/``password`` log in after the TLS upgrade, never in cleartext unless
    ``tls="none"``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        tls: TLSMode | None = None,
        ssl: SSLSetting = None,
        ssl_context: ssl_module.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float | None = 30.0,
        connect_timeout: float | None = None,
        message_timeout: float | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if ssl_context is not None:
            if ssl is not None:
                raise ConfigurationError("give ssl= or its older name ssl_context=, not both")
            ssl = ssl_context
        if ssl is not None and not isinstance(ssl, (bool, ssl_module.SSLContext)):
            resolve_ssl(ssl)  # raises its one-line ConfigurationError
        if tls is None:
            tls = "none" if ssl is False else "opportunistic"
        if tls not in _TLS_MODES:
            raise ConfigurationError(f"tls must be one of {', '.join(_TLS_MODES)}, not {tls!r}")
        if ssl is False and tls != "none":
            raise ConfigurationError(f"tls={tls!r} needs TLS, but ssl=False turns it off")
        if password is not None and username is None:
            raise ConfigurationError("password given without username")
        self.host = host
        self.port = port if port is not None else (465 if tls == "implicit" else 25)
        self.tls: TLSMode = tls
        self.ssl: SSLSetting = ssl
        self.username = username
        self._password = password
        self.timeout = timeout
        self.connect_timeout = connect_timeout if connect_timeout is not None else timeout
        self.message_timeout = message_timeout
        self.peer = (host, self.port)
        self._smtp = aiosmtplib.SMTP(
            hostname=host,
            port=self.port,
            timeout=timeout,
            use_tls=tls == "implicit",
            # The upgrade and the login are done in start(), in order, so that the
            # login can be refused when the upgrade did not happen.
            start_tls=False,
            # aiosmtplib would ask DNS for our FQDN (getfqdn) for EHLO: not on loopback.
            local_hostname=local_hostname or ("localhost" if host in _LOOPBACK else None),
        )

    @property
    def encrypted(self) -> bool:
        """True when the connection is protected by TLS."""
        return self._smtp.get_transport_info("sslcontext") is not None

    async def _context(self) -> ssl_module.SSLContext:
        if isinstance(self.ssl, ssl_module.SSLContext):
            return self.ssl
        # Loading the system's CAs takes milliseconds of disk reads: not on the loop.
        context = await asyncio.to_thread(resolve_ssl, self.ssl)
        assert context is not None  # ssl=False means tls="none", which never gets here
        return context

    async def start(self) -> Self:
        """Connect, upgrade to TLS as ``tls`` says, and log in (only over TLS)."""
        # aiosmtplib bounds the connect and each command itself (no block timeout).
        try:
            async with _smtp_errors(
                self.peer, "connect", None, command_timeout=self.connect_timeout
            ):
                context = await self._context() if self.tls == "implicit" else None
                await self._smtp.connect(timeout=self.connect_timeout, tls_context=context)
            if self.tls in ("starttls", "opportunistic"):
                async with _smtp_errors(
                    self.peer,
                    "starttls",
                    None,
                    command_timeout=self.timeout,
                    tls_required=self.tls == "starttls",
                ):
                    await self._starttls()
            if self.username is not None:
                async with _smtp_errors(self.peer, "login", None, command_timeout=self.timeout):
                    await self._login(self.username, self._password or "")
        except BaseException:
            self.close()
            raise
        return self

    async def _starttls(self) -> None:
        """STARTTLS when offered; required by ``tls="starttls"``."""
        if self._smtp.is_ehlo_or_helo_needed:
            try:
                await self._smtp.ehlo()
            except aiosmtplib.SMTPHeloError:
                if not self._smtp.is_connected:
                    raise
                await self._smtp.helo()  # an old server: no extensions, so no STARTTLS
        if self._smtp.supports_extension("starttls"):
            await self._smtp.starttls(tls_context=await self._context())
            logger.debug("STARTTLS with %s: encrypted", format_peer(self.peer))
        elif self.tls == "starttls":
            raise TLSRequired(self.peer, "the server does not offer STARTTLS")
        if self.tls == "starttls" and not self.encrypted:  # belt and braces: never plaintext
            raise TLSRequired(self.peer, "the connection is not encrypted")

    async def _login(self, username: str, password: str) -> None:
        """AUTH, refused here before any byte of it when the connection is cleartext."""
        if not self.encrypted and self.tls != "none":
            raise TLSRequired(
                self.peer,
                "the server offers no STARTTLS, and logging in would send the password"
                " in cleartext (tls='none' allows that)",
            )
        await self._smtp.login(username, password)

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
        headers (:func:`message_envelope`); Bcc and Resent-Bcc are never transmitted.
        """
        envelope_sender, rcpts = _envelope(message, sender, recipients)
        _stamp(message, envelope_sender)
        async with _smtp_errors(
            self.peer, "send", self.message_timeout, command_timeout=self.timeout
        ):
            try:
                refused, _ = await self._smtp.send_message(
                    message, sender=envelope_sender, recipients=rcpts
                )
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
    sender, rcpts = _envelope(message, sender, rcpts)  # a bad envelope fails before connecting
    async with SMTPClient(host, port, **options) as client:
        return await client.send_message(message, sender=sender, recipients=rcpts)
