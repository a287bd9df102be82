"""What the mail demos share: escaping for the terminal, one-line message summaries,
and where the password comes from."""

from __future__ import annotations

import email
import email.policy
import getpass
import os
import sys

__all__ = ["PASSWORD_ENV", "escape", "password_for", "summary"]

PASSWORD_ENV = "ASYNCNET_MAIL_PASSWORD"


def escape(text: str, width: int | None = None) -> str:
    """Control characters shown as escapes (a hostile Subject cannot drive the terminal)."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if width is not None and len(shown) > width:
        shown = shown[: width - 3] + "..."
    return shown


def summary(data: bytes) -> str:
    """``Subject (N bytes)`` for a raw message."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    return f"{escape(str(message['Subject'] or '(no subject)'), 60)} ({len(data)} bytes)"


def password_for(user: str, host: str) -> str | None:
    """$ASYNCNET_MAIL_PASSWORD, else the local pair's "demo", else a prompt; never argv."""
    password = os.environ.get(PASSWORD_ENV)
    if password is not None:
        return password
    if host in ("127.0.0.1", "::1", "localhost"):
        return "demo"  # the local mailserver's default password
    if not sys.stdin.isatty():
        return None
    return getpass.getpass(f"password for {user}@{host}: ")
