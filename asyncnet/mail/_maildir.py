"""Per-user Maildirs (stdlib :mod:`mailbox`): where the local pair delivers and POP3 reads.

:class:`Maildirs` maps a user name to ``root/<user>`` (a Maildir with ``tmp``,
``new`` and ``cur``).  Delivery writes under ``tmp`` and moves the file into
``new`` once complete, so a reader never sees half a message: whole messages through
:meth:`mailbox.Maildir.add`, streamed ones (the SMTP server's) through
:class:`MaildirWriter`, a chunk at a time.  Servers read messages back the same way
(:meth:`Maildirs.open` and :func:`wire_chunks`), never whole.  On disk, messages
may have ``\\n`` line endings (the Maildir convention); :func:`wire_form` gives them
back with ``\\r\\n``, as SMTP carried them and POP3 serves them, so what was sent,
what is stored and what is read back compare equal.

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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import ConfigurationError
from ..protocols import ensure_final_newline

__all__ = [
    "CHUNK_SIZE",
    "Maildirs",
    "MaildirWriter",
    "MaildropEntry",
    "MessageFile",
    "WireForm",
    "clean_tmp",
    "tmp_name",
    "uid_for_key",
    "wire_chunks",
    "wire_form",
]

logger = logging.getLogger("asyncnet.mail")

_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_UID_CHARS = re.compile(r"[\x21-\x7e]{1,70}")

CHUNK_SIZE = 64 * 1024
"""Bytes read from (and written to) a message file at a time: what a server holds of it."""

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


class MessageFile(Protocol):
    """What a message is read from: a binary file (``mailbox``'s, or one of ``open``'s)."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


class WireForm:
    """:func:`wire_form`, a chunk at a time (sans-IO): the same bytes, never the whole message.

    Feed the file's chunks in order, then call :meth:`finish` once; the outputs joined
    equal ``wire_form(b"".join(chunks))`` whatever the chunk boundaries.  A line ending
    split between two chunks (a ``\\r`` ending one, the ``\\n`` starting the next) is
    kept back until the next chunk says which it is.
    """

    __slots__ = ("_cr", "_ended")

    def __init__(self) -> None:
        self._cr = False  # a "\r" ends the input so far: data, or half a line ending
        self._ended = True  # the output so far ends a line (or is empty)

    def feed(self, chunk: bytes) -> bytes:
        """The wire form of the next chunk (possibly shorter: a final ``\\r`` waits)."""
        if self._cr:
            chunk = b"\r" + chunk
            self._cr = False
        if chunk.endswith(b"\r"):
            self._cr = True
            chunk = chunk[:-1]
        if not chunk:
            return b""
        # LF and CRLF both become CRLF; a bare CR stays data (as _lines() reads it).
        out = chunk.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        self._ended = out.endswith(b"\n")
        return out

    def finish(self) -> bytes:
        """The end of the message: a final CRLF where the last line had none."""
        if self._cr:  # "\r" at the very end is that line's ending, as wire_form() reads it
            self._cr = False
            self._ended = True
            return b"\r\n"
        if not self._ended:
            self._ended = True
            return b"\r\n"
        return b""


def wire_chunks(file: MessageFile, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The message in ``file`` in wire form, ``chunk_size`` bytes read at a time."""
    form = WireForm()
    while chunk := file.read(chunk_size):
        if out := form.feed(chunk):
            yield out
    if out := form.finish():
        yield out


def uid_for_key(key: str) -> str:
    """The POP3 unique-id of a Maildir key (the key itself when it is a valid one)."""
    if _UID_CHARS.fullmatch(key):
        return key
    return "sha-" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:60]


class MaildirWriter:
    """One message being delivered to one or more users, written a chunk at a time.

    The bytes go to a file in the first user's ``tmp`` as they arrive (:meth:`write`);
    :meth:`commit` flushes it to disk and links it into every user's ``new`` (one copy
    on disk however many users: Maildir files are never changed in place), so a reader
    never sees part of a message; :meth:`abort` removes it.  Get one from
    :meth:`Maildirs.writer`; the methods that touch the disk run in a thread.
    """

    def __init__(self, maildirs: Maildirs, users: list[str]) -> None:
        if not users:
            raise ValueError("a delivery needs at least one user")
        self.maildirs = maildirs
        self.users = list(users)
        self.name = tmp_name()
        self.path = maildirs.path(users[0]) / "tmp" / self.name
        self.size = 0
        """Bytes written so far."""
        self._file = open(self.path, "xb")  # noqa: SIM115 (closed by commit or abort)

    async def write(self, data: bytes) -> None:
        """Append ``data`` to the message."""
        if data:
            await asyncio.to_thread(self._file.write, data)
            self.size += len(data)

    def commit_now(self) -> dict[str, str]:
        """Store the message for every user (blocking); returns each user's key."""
        file = self._file
        file.flush()
        os.fsync(file.fileno())  # on disk before any "250 OK" says it is
        file.close()
        keys: dict[str, str] = {}
        try:
            for user in self.users:
                new = self.maildirs.path(user) / "new"
                try:
                    os.link(self.path, new / self.name)
                except OSError:  # a file system without hard links: a copy then
                    _copy_via_tmp(self.path, self.maildirs.path(user), self.name)
                _fsync_dir(new)
                keys[user] = self.name
        except BaseException:
            for user in keys:  # all or none: a retried delivery must not duplicate
                with contextlib.suppress(OSError):
                    os.unlink(self.maildirs.path(user) / "new" / self.name)
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        return keys

    async def commit(self) -> dict[str, str]:
        """:meth:`commit_now` without blocking the loop."""
        return await asyncio.to_thread(self.commit_now)

    def abort(self) -> None:
        """Throw the partial message away (quick: no thread needed)."""
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _copy_via_tmp(source: Path, maildir: Path, name: str) -> None:
    tmp = maildir / "tmp" / tmp_name()
    with open(source, "rb") as src, open(tmp, "xb") as dst:
        while chunk := src.read(CHUNK_SIZE):
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, maildir / "new" / name)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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

    async def writer(self, users: list[str]) -> MaildirWriter:
        """Start delivering a message to ``users``, written as it arrives (no whole copy
        in memory): :meth:`MaildirWriter.write` its chunks, then ``commit()``."""
        for user in users:
            self.path(user)  # refuse a bad name before any file exists
        return await asyncio.to_thread(MaildirWriter, self, users)

    def scan(self, user: str) -> list[MaildropEntry]:
        """The maildrop as a POP3 session starts it: every message, oldest first."""
        box = self.maildir(user)
        entries = []
        for key in box.iterkeys():
            try:
                file = box.get_file(key)
            except (KeyError, FileNotFoundError):
                continue  # deleted by someone else since keys() was read
            with contextlib.closing(file):
                # Counted a chunk at a time: a login never holds a whole message.
                size = sum(len(chunk) for chunk in wire_chunks(file))
            entries.append(MaildropEntry(key, uid_for_key(key), size))
        entries.sort(key=lambda e: _delivery_order(e.key))
        return entries

    def read(self, user: str, key: str) -> bytes:
        """A message in wire form (CRLF), whole (servers stream it: :meth:`open`)."""
        return wire_form(self.maildir(user).get_bytes(key))

    def open(self, user: str, key: str) -> MessageFile:
        """A message's file, to read in chunks (:func:`wire_chunks`); ``KeyError`` if gone."""
        file: MessageFile = self.maildir(user).get_file(key)
        return file

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


_STDLIB_KEY = re.compile(r"(\d+)\.M(\d+)P\d+(?:Q(\d+)|R[0-9a-f]+)\.")


def _delivery_order(key: str) -> tuple[int, int, int, str]:
    # mailbox.Maildir names files "<time>.M<usec>P<pid>Q<count>.<host>", MaildirWriter
    # "<time>.M<usec>P<pid>R<random>.<host>" (tmp_name()): oldest first.
    match = _STDLIB_KEY.match(key)
    if match is None:
        return (0, 0, 0, key)
    seconds, usec, count = match.groups()
    return (int(seconds), int(usec), int(count or 0), key)
