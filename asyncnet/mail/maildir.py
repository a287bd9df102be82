"""Per-user Maildirs (stdlib :mod:`mailbox`): where the local pair delivers and POP3 reads.

:class:`Maildirs` maps a user name to ``root/<user>`` (a Maildir with ``tmp``,
``new`` and ``cur``).  Delivery goes through :meth:`mailbox.Maildir.add`, which
writes under ``tmp`` and renames into ``new``, so a reader never sees half a
message.  On disk, messages have ``\\n`` line endings (the Maildir convention);
:func:`wire_form` gives them back with ``\\r\\n``, as SMTP carried them and POP3
serves them, so what was sent, what is stored and what is read back compare equal.

A message's POP3 unique-id is its Maildir key (the unique file name before any
``:2,`` flags), which never changes while the file exists: UIDL stays stable
across sessions.  A key that is not a valid unique-id (over 70 characters, or
characters outside 0x21-0x7E) gets a stable digest instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import mailbox
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigurationError
from ..protocols.lines import ensure_final_newline

__all__ = ["Maildirs", "MaildropEntry", "uid_for_key", "wire_form"]

_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_UID_CHARS = re.compile(r"[\x21-\x7e]{1,70}")


def wire_form(data: bytes) -> bytes:
    """The message as it travels over SMTP and POP3: CRLF line endings, final CRLF."""
    return ensure_final_newline(data)


def uid_for_key(key: str) -> str:
    """The POP3 unique-id of a Maildir key (the key itself when it is a valid one)."""
    if _UID_CHARS.fullmatch(key):
        return key
    return "sha-" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:60]


@dataclass(frozen=True, slots=True)
class MaildropEntry:
    """One message of a maildrop as POP3 sees it."""

    key: str
    uid: str
    size: int
    """Octets on the wire (CRLF line endings), what STAT and LIST report."""


class Maildirs:
    """One Maildir per user under ``root``; users are names like ``alice``."""

    def __init__(self, root: str | Path, users: list[str] | tuple[str, ...] = ()) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        for user in users:
            self.maildir(user)  # create them now, so a new user's POP3 login finds one

    def path(self, user: str) -> Path:
        """The Maildir directory of ``user`` (refuses names that could escape ``root``)."""
        if not _USER.fullmatch(user):
            raise ConfigurationError(f"not a valid mailbox user name: {user!r}")
        return self.root / user

    def maildir(self, user: str) -> mailbox.Maildir:
        """``user``'s Maildir (created if missing)."""
        return mailbox.Maildir(self.path(user), factory=None, create=True)

    def deliver_now(self, user: str, data: bytes) -> str:
        """Add a message to ``user``'s Maildir (blocking); returns its key."""
        return self.maildir(user).add(data)

    async def deliver(self, user: str, data: bytes) -> str:
        """Add a message to ``user``'s Maildir without blocking the loop; returns its key."""
        return await asyncio.to_thread(self.deliver_now, user, data)

    def scan(self, user: str) -> list[MaildropEntry]:
        """The maildrop as a POP3 session starts it: every message, oldest first."""
        box = self.maildir(user)
        entries = []
        for key in box.iterkeys():
            try:
                data = box.get_bytes(key)
            except KeyError:
                continue  # deleted by someone else since keys() was read
            entries.append(MaildropEntry(key, uid_for_key(key), len(wire_form(data))))
        entries.sort(key=lambda e: _delivery_order(e.key))
        return entries

    def read(self, user: str, key: str) -> bytes:
        """A message in wire form (CRLF)."""
        return wire_form(self.maildir(user).get_bytes(key))

    def remove(self, user: str, keys: list[str]) -> list[str]:
        """Delete messages; returns the keys that were already gone."""
        box = self.maildir(user)
        missing = []
        for key in keys:
            try:
                box.remove(key)
            except (KeyError, FileNotFoundError):
                missing.append(key)
        return missing


_STDLIB_KEY = re.compile(r"(\d+)\.M(\d+)P\d+Q(\d+)\.")


def _delivery_order(key: str) -> tuple[int, int, int, str]:
    # mailbox.Maildir names files "<time>.M<usec>P<pid>Q<count>.<host>": oldest first.
    match = _STDLIB_KEY.match(key)
    if match is None:
        return (0, 0, 0, key)
    seconds, usec, count = match.groups()
    return (int(seconds), int(usec), int(count), key)
