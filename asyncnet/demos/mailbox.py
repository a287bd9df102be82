"""The tutorial's mailbox processor: log in, count, retrieve and parse each message.

    python -m asyncnet.demos.mailserver &                  # the local pair (POP3 :8110)
    python -m asyncnet.demos.mailbox                       # From / Subject / Date / size
    python -m asyncnet.demos.mailbox --delete              # ... and delete them
    python -m asyncnet.demos.mailbox --save ./inbox --delete   # fetch safely (see below)
    python -m asyncnet.demos.mailbox --host pop.example.org --port 995 --tls implicit --user me

The password comes from $ASYNCNET_MAIL_PASSWORD or a prompt (the local pair's is
"demo"), never from the command line.  --save DIR stores every message in the
Maildir DIR keyed by its UIDL before any DELE: a dropped connection loses nothing,
and running again stores nothing twice and reports deletions it could not confirm
(it also removes the partial file a killed run left in DIR/tmp).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import sys

from .. import run
from ..errors import ConfigurationError
from ..mail import FetchStore, POP3Client, fetch_all
from . import _cli as cli
from ._mail import PASSWORD_ENV, escape, password_for


async def mailbox(args: argparse.Namespace, password: str) -> int:
    """The slide: connect, log in, list, and for each message retrieve, parse, print."""
    async with POP3Client(args.host, args.port, tls=args.tls, timeout=args.timeout) as pop:
        await pop.login(args.user, password)
        count, size = await pop.stat()
        print(f"{count} message(s), {size} bytes")
        if args.save:
            return await save(pop, args)
        print(f"{'#':>3}  {'From':28}  {'Subject':30}  {'Date':31}  {'size':>7}")
        for number, octets in (await pop.list()).items():
            message = email.message_from_bytes(await pop.retr(number), policy=email.policy.default)
            sender, subject = str(message["From"] or ""), str(message["Subject"] or "")
            date = str(message["Date"] or "")
            print(
                f"{number:>3}  {escape(sender, 28):28}  {escape(subject, 30):30}  "
                f"{escape(date, 31):31}  {octets:>7}"
            )
            if args.delete:
                await pop.dele(number)
    return 0


async def save(pop: POP3Client, args: argparse.Namespace) -> int:
    """--save: fetch into a local Maildir, never losing or duplicating a message."""
    store = FetchStore(args.save, f"{args.user}@{args.host}:{pop.port}")
    report = await fetch_all(pop, store, delete=args.delete)
    print(
        f"saved {len(report.stored)} new message(s) in {args.save};"
        f" {len(report.already)} already there; {len(report.deleted)} deleted"
    )
    if report.unconfirmed:
        print(
            f"deletion state unknown for {len(report.unconfirmed)} message(s)"
            " (run again to finish): " + ", ".join(report.unconfirmed)
        )
    if report.error is not None:
        print(f"mailbox: stopped early: {escape(str(report.error))}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Read a POP3 mailbox."""
    parser = cli.parser("python -m asyncnet.demos.mailbox", __doc__)
    parser.add_argument("--host", default="127.0.0.1", help="POP3 server (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=cli.port_number, help="POP3 port (default 8110 on loopback, else 110)"
    )
    parser.add_argument("--user", default="demo", help="mailbox user (default demo)")
    parser.add_argument(
        "--tls",
        choices=["none", "stls", "opportunistic", "implicit"],
        help="TLS: none on loopback, else stls (required)",
    )
    parser.add_argument("--delete", action="store_true", help="delete what was read")
    parser.add_argument("--save", metavar="DIR", help="store messages in the Maildir DIR")
    parser.add_argument(
        "--timeout", type=cli.positive_float, default=30.0, help="seconds per command"
    )
    return cli.main(parser, body, argv)


def body(args: argparse.Namespace) -> int:
    """The body of main(): the default port, the password, then the slide."""
    if args.port is None:
        loopback = args.host in ("127.0.0.1", "::1", "localhost")
        args.port = 8110 if loopback else (995 if args.tls == "implicit" else 110)
    password = password_for(args.user, args.host)
    if password is None:
        raise ConfigurationError(f"set ${PASSWORD_ENV} (no terminal to ask for the password)")
    return run(mailbox(args, password))


if __name__ == "__main__":
    raise SystemExit(main())
