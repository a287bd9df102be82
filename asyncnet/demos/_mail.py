"""What the mail demos share: escaping for the terminal, one-line message summaries,
and where the password comes from."""

from __future__ import annotations

import getpass
import os
import sys

from ..errors import ConfigurationError

__all__ = [
    "LOCAL_PASSWORD",
    "LOCAL_USER",
    "LOOPBACK",
    "PASSWORD_ENV",
    "escape",
    "password_for",
    "summary",
]

PASSWORD_ENV = "ASYNCNET_MAIL_PASSWORD"


def escape(text: str, width: int | None = None) -> str:
    """Control characters shown as escapes (a hostile Subject cannot drive the terminal)."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if width is not None and len(shown) > width:
        shown = shown[: width - 3] + "..."
    return shown


def summary(data: bytes) -> str:
    """``Subject (N bytes)`` for a raw message."""
    # The email package is a large import that only a received message needs.
    import email
    import email.policy

    message = email.message_from_bytes(data, policy=email.policy.default)
    return f"{escape(str(message['Subject'] or '(no subject)'), 60)} ({len(data)} bytes)"


LOCAL_USER = LOCAL_PASSWORD = "demo"
"""The local mail pair's (the mailserver demo's) own user, and its password."""

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def password_for(user: str, host: str) -> str:
    """$ASYNCNET_MAIL_PASSWORD, else "demo" for the local pair's own user on loopback,
    else a prompt on a terminal; never the command line.

    Any other user is asked for: sending the pair's password for someone else's
    mailbox (a local Dovecot's, say) would only end in an authentication error.
    """
    password = os.environ.get(PASSWORD_ENV)
    if password is not None:
        return password
    if user == LOCAL_USER and host in LOOPBACK:
        return LOCAL_PASSWORD
    if not sys.stdin.isatty():
        raise ConfigurationError(
            f"no password for {user}@{host}: set ${PASSWORD_ENV} (or run on a terminal to be asked)"
        )
    try:
        return getpass.getpass(f"password for {user}@{host}: ")
    except EOFError:
        raise ConfigurationError(f"no password given for {user}@{host}") from None
