"""A local mail pair to try the mail demos on: SMTP in, Maildirs, POP3 out.

    python -m asyncnet.demos.mailserver                  # SMTP 127.0.0.1:8025, POP3 :8110
    python -m asyncnet.demos.mailserver --port 0         # any free ports, printed
    python -m asyncnet.demos.mailserver --maildir ./mail --user alice --user bob

aiosmtpd takes mail for the users (any domain: alice@localhost, alice@example.org)
and refuses every other recipient with 550, so the sendmail demo can show partial
and total failure.  Each arrival is printed, escaped.  The POP3 server serves the
Maildirs.  Every user's password is $ASYNCNET_MAIL_PASSWORD, or "demo" when unset
(loopback only: this is a toy).  Ctrl-C stops.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys

from ..errors import format_peer
from ..mail.local import Delivery, LocalMailServer
from ..runner import catch_signals, run
from ._cli import parse
from ._mail import escape, summary

SMTP_PORT, POP3_PORT = 8025, 8110


def show(delivery: Delivery) -> None:
    """Print one arrival: who got what from whom."""
    print(f"  {delivery.user} <- {escape(delivery.sender)}: {summary(delivery.data)}", flush=True)


async def serve(args: argparse.Namespace) -> int:
    """Run the pair until Ctrl-C."""
    password = os.environ.get("ASYNCNET_MAIL_PASSWORD", "demo")
    users = {user: password for user in args.user}
    smtp_port = args.smtp_port if args.port is None else args.port
    pop3_port = args.pop3_port if args.port is None else args.port
    try:
        with catch_signals() as stopped:
            async with LocalMailServer(
                users,
                root=args.maildir,
                host=args.host,
                smtp_port=smtp_port,
                pop3_port=pop3_port,
                on_delivery=show,
            ) as mail:
                print(
                    f"mailserver: SMTP on {format_peer(mail.smtp_address)}, POP3 on"
                    f" {format_peer(mail.pop3_address)}, users {', '.join(users)},"
                    f" Maildirs in {mail.root} (Ctrl-C to stop)",
                    flush=True,
                )
                await stopped
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            print(
                f"mailserver: cannot listen on {args.host} ({exc.strerror or exc});"
                " is another mailserver running? try --port 0",
                file=sys.stderr,
            )
        else:
            print(f"mailserver: {exc} (check --maildir)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Serve SMTP and POP3 on loopback."""
    parser = argparse.ArgumentParser(
        prog="python -m asyncnet.demos.mailserver",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to serve on")
    parser.add_argument("--smtp-port", type=int, default=SMTP_PORT, help="SMTP port (8025)")
    parser.add_argument("--pop3-port", type=int, default=POP3_PORT, help="POP3 port (8110)")
    parser.add_argument("--port", type=int, help="both ports (0: any free ones, printed)")
    parser.add_argument("--maildir", help="keep the Maildirs here (default: a temporary dir)")
    parser.add_argument(
        "--user", action="append", help="a mailbox user (repeatable; default demo and alice)"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log (-v, -vv)")
    args = parse(parser, argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("--host must be a loopback address: this is a toy server")
    args.user = args.user or ["demo", "alice"]
    return run(serve(args))


if __name__ == "__main__":
    raise SystemExit(main())
