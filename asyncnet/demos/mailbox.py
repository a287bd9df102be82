"""The tutorial's mailbox processor: log in, count, retrieve and parse each message.

    python -m asyncnet.demos.mailserver &                  # the local pair (POP3 :8110)
    python -m asyncnet.demos.mailbox                       # From / Subject / Date / size
    python -m asyncnet.demos.mailbox --delete              # ... and delete them
    python -m asyncnet.demos.mailbox --save ./inbox --delete   # fetch safely (see below)
    python -m asyncnet.demos.mailbox --host pop.example.org --user me        # STLS, asks
    python -m asyncnet.demos.mailbox --host pop.example.org --port 995 --tls implicit --user me
    ASYNCNET_OAUTH_TOKEN=... python -m asyncnet.demos.mailbox --host pop.gmail.com \\
        --port 995 --tls implicit --user me@gmail.com --auth xoauth2

The password comes from $ASYNCNET_MAIL_PASSWORD or, on a terminal, a prompt; never
from the command line.  Only the local pair's own user ("demo", the default) on
loopback gets the pair's password "demo" without asking.  --auth xoauth2 takes an
OAuth 2.0 access token from $ASYNCNET_OAUTH_TOKEN instead.

--auth picks the login method; by default the best the server offers (its CAPA):
over TLS SASL PLAIN, without TLS CRAM-MD5 or APOP, which keep the password off the
wire.  USER, PLAIN, LOGIN and XOAUTH2 send the password (or token) itself: without
TLS they need --tls none, said on purpose.  --cafile adds a CA to the system's
trust store; --cert/--key present a client certificate.

--save DIR stores every message in the Maildir DIR keyed by its UIDL before any
DELE: a dropped connection loses nothing, and running again stores nothing twice
and reports deletions it could not confirm (it also removes the partial file a
killed run left in DIR/tmp).
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import os
import sys

from .. import run
from ..errors import ConfigurationError
from ..mail import (
    POP3_AUTH_METHODS,
    FetchStore,
    POP3AuthMethod,
    POP3Client,
    POP3ReplyError,
    TLSRequired,
    fetch_all,
)
from . import _cli as cli
from ._mail import LOCAL_USER, LOOPBACK, PASSWORD_ENV, escape, password_for

TOKEN_ENV = "ASYNCNET_OAUTH_TOKEN"


async def mailbox(args: argparse.Namespace, secret: str) -> int:
    """The slide: connect, log in, list, and for each message retrieve, parse, print."""
    async with POP3Client(
        args.host,
        args.port,
        tls=args.tls,
        ssl=args.ssl,
        timeout=args.timeout,  # --tls none, said on purpose, allows cleartext logins
    ) as pop:
        await log_in(pop, args, secret)
        count, size = await pop.stat()
        print(f"{count} message(s), {size} bytes")
        if args.save:
            return await save(pop, args)
        print(f"{'#':>3}  {'From':28}  {'Subject':30}  {'Date':31}  {'size':>7}")
        sizes = await pop.list()
        async for number, data in pop.retr_many(sizes):  # pipelined if the server can
            message = email.message_from_bytes(data, policy=email.policy.default)
            sender, subject = str(message["From"] or ""), str(message["Subject"] or "")
            date = str(message["Date"] or "")
            print(
                f"{number:>3}  {escape(sender, 28):28}  {escape(subject, 30):30}  "
                f"{escape(date, 31):31}  {sizes[number]:>7}"
            )
        if args.delete:  # all at once: pipelined too (applied at QUIT)
            await asyncio.gather(*(pop.dele(number) for number in sizes))
    return 0


async def log_in(pop: POP3Client, args: argparse.Namespace, secret: str) -> None:
    """Log in with --auth (or the best method offered); failures in the flags' words."""
    try:
        await pop.authenticate(args.user, secret, args.auth)
    except TLSRequired:
        what = f"--auth {args.auth}" if args.auth else "every login method the server offers"
        raise ConfigurationError(
            f"{what} would send the password in cleartext: use --tls stls (or --tls"
            " implicit with the TLS port), or --tls none to send it anyway"
        ) from None
    except POP3ReplyError as exc:
        if exc.temporary:  # [IN-USE], [SYS/TEMP]: the server's words say it all
            raise
        offered = await pop.auth_methods(usable_only=False)
        if args.auth is not None and args.auth not in offered:
            others = ", ".join(offered) or "none asyncnet speaks"
            raise ConfigurationError(
                f"the server refused --auth {args.auth} ({exc}); it offers: {others}."
                " Choose one of those with --auth, or leave --auth out"
            ) from None
        raise ConfigurationError(
            f"{exc}: check --user and the password (${PASSWORD_ENV}, or the prompt)"
        ) from None


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


def secret_for(args: argparse.Namespace) -> str:
    """The password (or --auth xoauth2's token): the environment, the local pair, a prompt."""
    if args.auth == "xoauth2":
        token = os.environ.get(TOKEN_ENV)
        if not token:
            raise ConfigurationError(
                f"--auth xoauth2 needs the OAuth 2.0 access token in ${TOKEN_ENV}"
            )
        return token
    return password_for(args.user, args.host)


def auth_method(text: str) -> POP3AuthMethod:
    """An argparse ``type=``: a login method name, any case."""
    lowered = text.lower()
    for method in POP3_AUTH_METHODS:
        if method == lowered:
            return method
    raise argparse.ArgumentTypeError(
        f"invalid choice: {text!r} (choose from {', '.join(POP3_AUTH_METHODS)})"
    )


def main(argv: list[str] | None = None) -> int:
    """Read a POP3 mailbox."""
    parser = cli.parser("python -m asyncnet.demos.mailbox", __doc__)
    parser.add_argument("--host", default="127.0.0.1", help="POP3 server (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=cli.port_number, help="POP3 port (default 8110 on loopback, else 110)"
    )
    parser.add_argument("--user", default=LOCAL_USER, help="mailbox user (default demo)")
    parser.add_argument(
        "--auth",
        type=auth_method,
        metavar="{" + ",".join(POP3_AUTH_METHODS) + "}",
        help="login method (default: the best the server offers)",
    )
    parser.add_argument(
        "--tls",
        choices=["none", "stls", "opportunistic", "implicit"],
        help="TLS: none on loopback, else stls (required)",
    )
    cli.add_tls_arguments(parser)
    parser.add_argument("--delete", action="store_true", help="delete what was read")
    parser.add_argument("--save", metavar="DIR", help="store messages in the Maildir DIR")
    parser.add_argument(
        "--timeout", type=cli.positive_float, default=30.0, help="seconds per command"
    )
    return cli.main(parser, body, argv)


def body(args: argparse.Namespace) -> int:
    """The body of main(): the default port, TLS files, the password, then the slide."""
    loopback = args.host in LOOPBACK
    if args.port is None:
        args.port = 8110 if loopback else (995 if args.tls == "implicit" else 110)
    files = [f"--{name}" for name in ("cafile", "cert", "key") if getattr(args, name)]
    if files and (args.tls == "none" or (args.tls is None and loopback)):
        verb = "needs" if len(files) == 1 else "need"
        raise cli.UsageError(
            f"{'/'.join(files)} {verb} TLS: add --tls stls (or --tls implicit with the TLS port)"
        )
    args.ssl = cli.tls_context(args)  # a bad file is one line now, before the prompt
    return run(mailbox(args, secret_for(args)))


if __name__ == "__main__":
    raise SystemExit(main())
