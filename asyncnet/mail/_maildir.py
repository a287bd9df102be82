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

Leftovers in ``tmp``: a process killed while writing a message leaves its partial file
there.  :func:`clean_tmp` removes them, following maildir(5) (files in ``tmp`` not touched
for 36 hours are removed) and going further for a killed process's own files: a name in
the Maildir form ``time.MusecPpid....host`` whose host is this one and whose pid is no
longer running is removed at once.  :class:`Maildirs` runs it for each user's Maildir
when created (the mailserver's start), :class:`~asyncnet.mail._store.FetchStore` for its
directory (``mailbox --save``'s start); :func:`tmp_name` is the name form both write.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import mailbox
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigurationError
from ..protocols import ensure_final_newline

__all__ = ["Maildirs", "MaildropEntry", "clean_tmp", "tmp_name", "uid_for_key", "wire_form"]

logger = logging.getLogger("asyncnet.mail")

_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_UID_CHARS = re.compile(r"[\x21-\x7e]{1,70}")

TMP_MAX_AGE = 36 * 3600
"""Seconds after which maildir(5) says a file left in ``tmp`` may be removed."""

# "<seconds>.<unique>.<host>": the unique part holds "P<pid>" (qmail's and the stdlib's
# "M<usec>P<pid>Q<n>", ours "M<usec>P<pid>R<random>"); the host may contain dots.
_TMP_NAME = re.compile(r"\d+\.[^.]*?P(\d+)(?![0-9])[^.]*\.(.+)")


def _host() -> str:
    # As mailbox.Maildir writes it: "/" and ":" would break the name apart.
    return socket.gethostname().replace("/", r"\057").replace(":", r"\072")


def tmp_name() -> str:
    """A unique name for a file in a Maildir's ``tmp``: ``time.MusecPpidRrandom.host``."""
    now = time.time()
    usec = int(now % 1 * 1e6)
    return f"{int(now)}.M{usec}P{os.getpid()}R{os.urandom(8).hex()}.{_host()}"


def _pid_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: running
        return True
    except (OSError, OverflowError):  # not a pid this system can have
        return False
    return True


def clean_tmp(directory: str | Path, *, max_age: float = TMP_MAX_AGE) -> list[Path]:
    """Remove the leftovers in ``directory/tmp``; returns the paths removed.

    A file goes when it was not modified for ``max_age`` seconds (maildir(5): 36 hours),
    or at once when its name says it was written on this host by a process that is no
    longer running.  Names in no known form, other hosts' files and live processes'
    files stay until they are old.
    """
    tmp = Path(directory) / "tmp"
    try:
        entries = list(os.scandir(tmp))
    except FileNotFoundError:
        return []
    host, now, removed = _host(), time.time(), []
    for entry in entries:
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            old = now - entry.stat(follow_symlinks=False).st_mtime > max_age
        except FileNotFoundError:
            continue  # renamed into new/ by its writer meanwhile
        match = _TMP_NAME.fullmatch(entry.name)
        dead = match is not None and match[2] == host and not _pid_running(int(match[1]))
        if old or dead:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    if removed:
        logger.info("removed %d leftover file(s) from %s", len(removed), tmp)
    return removed


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
            clean_tmp(self.path(user))  # what a killed server left mid-delivery

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
