"""The tutorial's sendmail slide: send one message, report partial and total failure.

    python -m asyncnet.demos.mailserver &                   # the local pair (SMTP :8025)
    python -m asyncnet.demos.sendmail                       # demo, alice: sent; nobody: 550
    python -m asyncnet.demos.sendmail --to nobody@localhost # every recipient refused: exit 1
    python -m asyncnet.demos.sendmail --file msg.eml -H 'X-Tag: test'  # a prepared message
    python -m asyncnet.demos.sendmail --host smtp.example.org --port 587 --tls starttls \\
        --user me --from me@example.org --to you@example.org

As with ``smtplib.sendmail()``, the result is a dictionary of refused recipients,
``{address: (code, message)}``: empty when everyone got the message.  When every
recipient is refused nothing is sent and an error lists each one's reply.

STARTTLS is used whenever the server offers it (loopback included), and --user never
logs in over a cleartext connection unless you say --tls none.  --cafile adds a CA to
the system's ones (a private or test CA); --cert/--key present a client certificate.
With --user the password comes from $ASYNCNET_MAIL_PASSWORD or a prompt, never argv.

--file sends a prepared RFC 5322 message (- reads stdin): the envelope comes from its
Sender/From and To, Cc and Bcc headers (Bcc is never transmitted) unless --from/--to
are given.  -H 'Name: value' sets a header (any Name already there is replaced;
repeat -H for several; -H 'Name:' removes it).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..errors import ConfigurationError, ProtocolError, format_peer
from . import _cli as cli
from ._mail import escape, password_for

# The email package, ssl, asyncio and the mail package (aiosmtplib, aiosmtpd) load in
# the functions that use them: --help and a usage error answer without them.
if TYPE_CHECKING:
    from email.message import EmailMessage

    from ..mail import MailConnectionError

RECIPIENTS = ["demo@localhost", "alice@localhost", "nobody@localhost"]
SENDER = "demo@localhost"
SUBJECT = "Network programming in Python"
BODY = "Sent by asyncnet's sendmail demo.\n"

# X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH: the certificate is
# fine but names another host, so the advice is about --host, not about trust.
_NAME_MISMATCH = (62, 64)


def header(text: str) -> tuple[str, str]:
    """An argparse ``type=``: ``Name: value``, refusing CR/LF (header injection)."""
    text = cli.utf8_text(text)
    if any(c in text for c in "\r\n\0"):
        raise argparse.ArgumentTypeError(
            f"{text!r}: a header must be one line (no CR, LF or NUL: header injection)"
        )
    name, colon, value = text.partition(":")
    if not colon or not name or not all("!" <= c <= "~" for c in name):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not 'Name: value' (a name of printable ASCII, no spaces, then ':')"
        )
    return name, value.strip()


def read_message(path: str) -> EmailMessage:
    """The message in ``path`` (``-``: stdin), parsed; a bad file is one line naming it."""
    import email.policy
    from email.message import EmailMessage
    from email.parser import BytesParser

    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as file:
                data = file.read()
    except FileNotFoundError:
        raise ConfigurationError(f"--file {path}: no such file") from None
    except IsADirectoryError:
        raise ConfigurationError(f"--file {path}: is a directory, not a message") from None
    except PermissionError:
        raise ConfigurationError(f"--file {path}: not readable (permission denied)") from None
    except OSError as exc:
        raise ConfigurationError(f"--file {path}: {exc.strerror or exc}") from None
    name = "stdin" if path == "-" else path
    if not data.strip():
        raise ConfigurationError(f"--file {name}: empty, there is no message to send")
    message = BytesParser(policy=email.policy.default).parsebytes(data)
    if not message.keys():
        raise ConfigurationError(
            f"--file {name}: not an RFC 5322 message (it does not start with header lines)"
        )
    assert isinstance(message, EmailMessage)  # what policy.default parses into
    return message


def set_headers(message: EmailMessage, headers: list[tuple[str, str]]) -> None:
    """Apply -H: each name given replaces the message's own; an empty value removes it."""
    for name in dict.fromkeys(name for name, _ in headers):
        del message[name]
    try:
        for name, value in headers:
            if value:
                message[name] = value
    except ValueError as exc:  # the policy's own checks (one Subject, a valid value)
        raise ConfigurationError(f"-H {name}: {exc}") from None


def build(args: argparse.Namespace) -> EmailMessage:
    """The message to send: --file's, or one made from --from/--to/--subject/--body."""
    from ..mail import make_message

    if args.file is not None:
        message = read_message(args.file)
    else:
        try:
            message = make_message(
                sender=args.sender or SENDER,
                recipients=args.to or RECIPIENTS,
                subject=args.subject if args.subject is not None else SUBJECT,
                body=args.body if args.body is not None else BODY,
            )
        except ValueError as exc:  # a header or address that would inject: refused
            raise ConfigurationError(str(exc)) from exc
    set_headers(message, args.header)
    return message


def envelope(args: argparse.Namespace, message: EmailMessage) -> tuple[str, list[str]]:
    """--from/--to, else what the message's headers say (as ``smtplib.send_message``)."""
    from ..mail import message_envelope

    if args.file is None:
        return args.sender or SENDER, args.to or RECIPIENTS
    name = "stdin" if args.file == "-" else args.file
    try:
        from_headers, to_headers = message_envelope(message)
    except ProtocolError as exc:
        raise ConfigurationError(f"--file {name}: {exc}") from None
    sender = args.sender or from_headers
    if sender is None:
        raise ConfigurationError(f"--file {name} has no From (or Sender) header: give --from")
    recipients = args.to or to_headers
    if not recipients:
        raise ConfigurationError(f"--file {name} has no To, Cc or Bcc address: give --to")
    return sender, recipients


def tls_advice(exc: MailConnectionError) -> str | None:
    """What to change when TLS failed: --cafile, --host or --tls/--port, or ``None``."""
    import ssl

    cause = exc.__cause__
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__
    if isinstance(cause, ssl.SSLCertVerificationError):
        if cause.verify_code in _NAME_MISMATCH:
            return f"{exc}: give --host a name the certificate is for"
        return f"{exc}: if you trust the CA that issued it, add it with --cafile FILE"
    if isinstance(cause, ssl.SSLError):
        return f"{exc}: is that port TLS from the first byte? check --tls and --port"
    return None


async def sendmail(args: argparse.Namespace) -> int:
    """Send, then print what the server refused (the slide's loop over the result)."""
    from ..mail import MailConnectionError, RecipientsRefused, TLSRequired, send_message

    message = build(args)
    sender, recipients = envelope(args, message)
    password = password_for(args.user, args.host) if args.user else None
    context = cli.tls_context(args)
    try:
        result = await send_message(
            message,
            sender=sender,
            recipients=recipients,
            host=args.host,
            port=args.port,
            tls=args.tls,
            ssl=False if args.tls == "none" else context,
            username=args.user,
            password=password,
            timeout=args.timeout,
        )
    except RecipientsRefused as exc:
        for address, (code, text) in exc.refused.items():
            print(f"  Error sending to {escape(address)}: code {code}: {escape(text)}")
        print("sendmail: every recipient was refused; nothing was sent", file=sys.stderr)
        return 1
    except TLSRequired as exc:
        if args.user and args.tls in (None, "opportunistic"):
            raise ConfigurationError(
                f"not logging in as {escape(args.user)}: {format_peer(exc.peer)} offers no"
                " STARTTLS, so the password would cross the network in cleartext; nothing"
                " was sent (pass --tls none to allow that)"
            ) from exc
        raise ConfigurationError(f"{exc}; check --tls (and --port)") from exc
    except MailConnectionError as exc:
        advice = tls_advice(exc)
        if advice is None:
            raise
        raise ConfigurationError(advice) from exc
    for address, (code, text) in result.items():
        print(f"  Error sending to {escape(address)}: code {code}: {escape(text)}")
    accepted = len(recipients) - len(result)
    print(f"sendmail: sent to {accepted} of {len(recipients)} recipient(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Send one message."""
    parser = cli.parser("python -m asyncnet.demos.sendmail", __doc__)
    parser.add_argument("--host", default="127.0.0.1", help="SMTP server (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=cli.port_number, default=8025, help="SMTP port (default 8025)"
    )
    parser.add_argument(
        "--tls",
        choices=["none", "starttls", "opportunistic", "implicit"],
        help="STARTTLS when offered (default, opportunistic); starttls = required;"
        " implicit = TLS from the first byte (port 465); none = never, even to log in",
    )
    parser.add_argument("--user", help="log in as USER (password: $ASYNCNET_MAIL_PASSWORD)")
    parser.add_argument(
        "--from", dest="sender", type=cli.utf8_text, help=f"the sender (default {SENDER})"
    )
    parser.add_argument(
        "--to", action="append", type=cli.utf8_text, help="a recipient (repeatable)"
    )
    parser.add_argument("--subject", type=cli.utf8_text, help=f"subject (default {SUBJECT!r})")
    parser.add_argument("--body", type=cli.utf8_text, help="the message text")
    parser.add_argument(
        "--file",
        metavar="FILE",
        help="send the prepared RFC 5322 message in FILE (- reads stdin)",
    )
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        type=header,
        default=[],
        metavar="'NAME: VALUE'",
        help="set a header, replacing the message's own (repeatable; 'NAME:' removes it)",
    )
    parser.add_argument(
        "--timeout", type=cli.positive_float, default=10.0, help="seconds per command"
    )
    cli.add_tls_arguments(parser)

    def body(args: argparse.Namespace) -> int:
        if args.file is not None and (args.subject is not None or args.body is not None):
            raise cli.UsageError(
                "--file sends the file's message as it is: no --subject or --body"
                " (use -H 'Subject: ...' to change its subject)"
            )
        if args.tls == "none" and (args.cafile or args.cert or args.key):
            raise cli.UsageError("--cafile, --cert and --key are for TLS: not with --tls none")
        from .._runner import run

        return run(sendmail(args))

    return cli.main(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
