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
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import format_peer
from . import _cli as cli
from ._mail import PASSWORD_ENV, escape, summary

if TYPE_CHECKING:
    from ..mail import Delivery

SMTP_PORT, POP3_PORT = 8025, 8110


def show(delivery: Delivery) -> None:
    """Print one arrival: who got what from whom."""
    print(f"  {delivery.user} <- {escape(delivery.sender)}: {summary(delivery.data)}", flush=True)


def serve(args: argparse.Namespace) -> int:
    """Run the pair until Ctrl-C (a second Ctrl-C stops at once)."""
    # aiosmtpd and the mail package load here: --help answers without them.
    from ..mail import LocalMailServer

    if args.host not in ("127.0.0.1", "::1", "localhost"):
        raise cli.UsageError("--host must be a loopback address: this is a toy server")
    password = os.environ.get(PASSWORD_ENV, "demo")
    users = {user: password for user in args.user or ["demo", "alice"]}
    mail = LocalMailServer(
        users,
        root=args.maildir,
        host=args.host,
        smtp_port=args.smtp_port if args.port is None else args.port,
        pop3_port=args.pop3_port if args.port is None else args.port,
        on_delivery=show,
    )
    cli.include_logger("mail.log")  # aiosmtpd's: SMTP connections and commands at -v
    smtp_log = logging.getLogger("mail.log")
    # Never its DEBUG: that shows AUTH exchanges (credentials) and message lines.
    smtp_log.setLevel(max(logging.INFO, smtp_log.level))

    def ready(_: Sequence[Any]) -> None:
        print(
            f"mailserver: SMTP on {format_peer(mail.smtp_address)}, POP3 on"
            f" {format_peer(mail.pop3_address)}, users {', '.join(users)},"
            f" Maildirs in {mail.root} (Ctrl-C to stop)",
            flush=True,
        )

    return cli.serve(mail, name="mailserver", ready=ready)


def main(argv: list[str] | None = None) -> int:
    """Serve SMTP and POP3 on loopback."""
    parser = cli.parser("python -m asyncnet.demos.mailserver", __doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to serve on")
    parser.add_argument(
        "--smtp-port", type=cli.port_number, default=SMTP_PORT, help="SMTP port (8025)"
    )
    parser.add_argument(
        "--pop3-port", type=cli.port_number, default=POP3_PORT, help="POP3 port (8110)"
    )
    parser.add_argument(
        "--port", type=cli.port_number, help="both ports (0: any free ones, printed)"
    )
    parser.add_argument("--maildir", help="keep the Maildirs here (default: a temporary dir)")
    parser.add_argument(
        "--user", action="append", help="a mailbox user (repeatable; default demo and alice)"
    )
    return cli.main(parser, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
