"""The tutorial's sendmail slide: send one message, report partial and total failure.

    python -m asyncnet.demos.mailserver &                   # the local pair (SMTP :8025)
    python -m asyncnet.demos.sendmail                       # demo, alice: sent; nobody: 550
    python -m asyncnet.demos.sendmail --to nobody@localhost # every recipient refused: exit 1
    python -m asyncnet.demos.sendmail --host smtp.example.org --port 587 --tls starttls \\
        --user me --from me@example.org --to you@example.org

As with ``smtplib.sendmail()``, the result is a dictionary of refused recipients,
``{address: (code, message)}``: empty when everyone got the message.  When every
recipient is refused nothing is sent and an error lists each one's reply.  With
--user the password comes from $ASYNCNET_MAIL_PASSWORD or a prompt, never argv.
"""

from __future__ import annotations

import argparse
import sys

from .. import run
from ..errors import ConfigurationError
from ..mail import RecipientsRefused, make_message, send_message
from . import _cli as cli
from ._mail import PASSWORD_ENV, escape, password_for

RECIPIENTS = ["demo@localhost", "alice@localhost", "nobody@localhost"]


async def sendmail(args: argparse.Namespace) -> int:
    """Send, then print what the server refused (the slide's loop over the result)."""
    try:
        message = make_message(
            sender=args.sender, recipients=args.to, subject=args.subject, body=args.body
        )
    except ValueError as exc:  # a header or address that would inject: refused before sending
        raise ConfigurationError(str(exc)) from exc
    password = password_for(args.user, args.host) if args.user else None
    if args.user and password is None:
        raise ConfigurationError(f"set ${PASSWORD_ENV} (no terminal to ask for the password)")
    try:
        result = await send_message(
            message,
            host=args.host,
            port=args.port,
            tls=args.tls,
            username=args.user,
            password=password,
            timeout=args.timeout,
        )
    except RecipientsRefused as exc:
        for address, (code, text) in exc.refused.items():
            print(f"  Error sending to {escape(address)}: code {code}: {escape(text)}")
        print("sendmail: every recipient was refused; nothing was sent", file=sys.stderr)
        return 1
    for address, (code, text) in result.items():
        print(f"  Error sending to {escape(address)}: code {code}: {escape(text)}")
    accepted = len(args.to) - len(result)
    print(f"sendmail: sent to {accepted} of {len(args.to)} recipient(s)")
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
        help="TLS: none on loopback, else opportunistic (starttls = required)",
    )
    parser.add_argument("--user", help="log in as USER (password: $ASYNCNET_MAIL_PASSWORD)")
    parser.add_argument("--from", dest="sender", default="demo@localhost", help="the sender")
    parser.add_argument("--to", action="append", help="a recipient (repeatable)")
    parser.add_argument("--subject", default="Network programming in Python", help="subject")
    parser.add_argument(
        "--body", default="Sent by asyncnet's sendmail demo.\n", help="the message text"
    )
    parser.add_argument(
        "--timeout", type=cli.positive_float, default=10.0, help="seconds per command"
    )

    def body(args: argparse.Namespace) -> int:
        args.to = args.to or RECIPIENTS
        return run(sendmail(args))

    return cli.main(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
