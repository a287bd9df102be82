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

from ..errors import AsyncNetError, NetworkError
from ..mail.errors import RecipientsRefused, TLSRequired
from ..mail.smtp import make_message, send_message
from ..runner import run
from ._cli import parse
from ._mail import escape, password_for

RECIPIENTS = ["demo@localhost", "alice@localhost", "nobody@localhost"]


async def sendmail(args: argparse.Namespace) -> int:
    """Send, then print what the server refused (the slide's loop over the result)."""
    message = make_message(
        sender=args.sender, recipients=args.to, subject=args.subject, body=args.body
    )
    password = password_for(args.user, args.host) if args.user else None
    if args.user and password is None:
        print("sendmail: set $ASYNCNET_MAIL_PASSWORD (no terminal to ask)", file=sys.stderr)
        return 1
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
        print("sendmail: every recipient was refused; nothing was sent", file=sys.stderr)
        for address, (code, text) in exc.refused.items():
            print(f"  Error sending to {escape(address)}: code {code}: {escape(text)}")
        return 1
    except AsyncNetError as exc:
        hint = _HINT if isinstance(exc, NetworkError) and not isinstance(exc, TLSRequired) else ""
        print(f"sendmail: {escape(str(exc))}{hint}", file=sys.stderr)
        return 1
    for address, (code, text) in result.items():
        print(f"  Error sending to {escape(address)}: code {code}: {escape(text)}")
    accepted = len(args.to) - len(result)
    print(f"sendmail: sent to {accepted} of {len(args.to)} recipient(s)")
    return 0


_HINT = (
    " (is `python -m asyncnet.demos.mailserver` running? --host/--port name another SMTP server)"
)


def main(argv: list[str] | None = None) -> int:
    """Send one message."""
    parser = argparse.ArgumentParser(
        prog="python -m asyncnet.demos.sendmail",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="SMTP server (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8025, help="SMTP port (default 8025)")
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
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per command")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log (-v, -vv)")
    args = parse(parser, argv)
    args.to = args.to or RECIPIENTS
    try:
        return run(sendmail(args))
    except ValueError as exc:  # a header or address that would inject: refused before sending
        print(f"sendmail: {escape(str(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
