"""Fetch mail over POP3 into a local Maildir, never losing and never duplicating a message.

The tutorial warns that a POP3 session that drops "leads to duplicate messages".
:func:`fetch_all` is the mailbox processor that does not: each message is keyed
by its UIDL and goes through these steps, each durable before the next starts::

    RETR  -> tmp/<name>  (streamed, fsync)  -> rename to new/<name> (fsync the dir)
          -> "stored <uid>" appended to the seen-set (fsync)
          -> DELE (only with delete=True)   -> "dele <uid>"
    QUIT +OK                                -> "deleted <uid>" for each DELE

``<name>`` is derived from the account and the UIDL, so storing the same message
twice writes the same file: a crash between the rename and the seen-set record
cannot produce a second copy.  Nothing is DELEted before it is safely stored.

What happens when the connection drops:

* mid-RETR: the partial file in ``tmp`` is removed; nothing was DELEted; the next
  run fetches the message.  When the process itself is killed there, the next
  :class:`FetchStore` on the directory removes the file
  (:func:`~asyncnet.mail._maildir.clean_tmp`: its name carries the dead process's pid);
* after DELE, or when QUIT's ``+OK`` is lost: the server keeps the messages (RFC
  1939 deletes only in the UPDATE state, after QUIT); the next run finds them
  already stored, does not store them again, and sends DELE again.  Until a QUIT
  is confirmed, those messages are reported as ``unconfirmed`` ("deletion state
  unknown"); a later run that no longer sees them on the server confirms them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..errors import AsyncNetError
from ._maildir import clean_tmp, tmp_name
from ._pop3.client import POP3Client

__all__ = ["FetchReport", "FetchStore", "fetch_all"]

_SEEN_PREFIX = ".asyncnet-seen-"


class FetchStore:
    """A local Maildir plus a durable seen-set for one POP3 account.

    Creating one removes what killed runs left in ``directory/tmp``
    (:func:`~asyncnet.mail._maildir.clean_tmp`).
    """

    def __init__(self, directory: str | Path, account: str) -> None:
        self.directory = Path(directory)
        self.account = account
        for sub in ("tmp", "new", "cur"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        clean_tmp(self.directory)
        tag = hashlib.sha256(account.encode()).hexdigest()[:16]
        self.seen_path = self.directory / f"{_SEEN_PREFIX}{tag}"
        self.stored: set[str] = set()
        self.dele_sent: set[str] = set()
        self.deleted: set[str] = set()
        self._load()

    def _load(self) -> None:
        try:
            text = self.seen_path.read_text("ascii")
        except FileNotFoundError:
            return
        sets = {"stored": self.stored, "dele": self.dele_sent, "deleted": self.deleted}
        for line in text.splitlines():
            # A torn last line (a crash mid-append) has no newline and may be cut short:
            # the splitlines() of a partial record still names a real state and uid, or
            # is skipped; either way the message file decides (see has()).
            state, _, uid = line.partition(" ")
            if state in sets and uid:
                sets[state].add(uid)

    def _record(self, state: str, uids: list[str]) -> None:
        if not uids:
            return
        data = "".join(f"{state} {uid}\n" for uid in uids).encode("ascii")
        with open(self.seen_path, "ab") as seen:
            seen.write(data)
            seen.flush()
            os.fsync(seen.fileno())

    def name_for(self, uid: str) -> str:
        """The Maildir file name of a message: the same for every attempt to store it."""
        digest = hashlib.sha256(f"{self.account}\0{uid}".encode()).hexdigest()[:40]
        return f"{digest}.pop3"

    def has(self, uid: str) -> bool:
        """True if the message is stored (recorded, or its file is in new/ or cur/)."""
        if uid in self.stored:
            return True
        name = self.name_for(uid)
        if (self.directory / "new" / name).exists() or any(
            p.name.split(":", 1)[0] == name for p in (self.directory / "cur").iterdir()
        ):
            self._record("stored", [uid])  # stored by a run that crashed before recording
            self.stored.add(uid)
            return True
        return False

    def begin(self, uid: str) -> tuple[Path, IO[bytes]]:
        """Open a temporary file for the message (in ``tmp``, named with our pid and host
        so that a later run can tell it was left by a process that died)."""
        path = self.directory / "tmp" / tmp_name()
        return path, open(path, "xb")

    def commit(self, uid: str, path: Path, file: IO[bytes]) -> Path:
        """fsync the file, move it into ``new`` (fsync the directory), record ``uid``."""
        file.flush()
        os.fsync(file.fileno())
        file.close()
        final = self.directory / "new" / self.name_for(uid)
        os.replace(path, final)
        _fsync_dir(self.directory / "new")
        self._record("stored", [uid])
        self.stored.add(uid)
        return final

    def abort(self, path: Path, file: IO[bytes]) -> None:
        """Throw a partial message away."""
        file.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def note_dele(self, uids: list[str]) -> None:
        """Record that DELE was sent (deletion is not confirmed until QUIT's +OK)."""
        self._record("dele", uids)
        self.dele_sent.update(uids)

    def note_deleted(self, uids: list[str]) -> None:
        """Record confirmed deletions."""
        self._record("deleted", uids)
        self.deleted.update(uids)

    @property
    def unconfirmed(self) -> set[str]:
        """Messages DELEted in a session whose QUIT was never confirmed."""
        return self.dele_sent - self.deleted


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class FetchReport:
    """What one :func:`fetch_all` run did."""

    stored: list[str] = field(default_factory=list)
    """UIDLs stored by this run."""
    already: list[str] = field(default_factory=list)
    """UIDLs found already stored (not stored again)."""
    deleted: list[str] = field(default_factory=list)
    """UIDLs whose deletion the server confirmed (QUIT +OK, or gone on a later run)."""
    unconfirmed: list[str] = field(default_factory=list)
    """UIDLs DELEted but not confirmed: the server may still hold them."""
    error: AsyncNetError | None = None
    """Why the run stopped early (None: it completed)."""

    @property
    def ok(self) -> bool:
        """True if the run completed and every deletion is confirmed."""
        return self.error is None and not self.unconfirmed


async def fetch_all(client: POP3Client, store: FetchStore, *, delete: bool = False) -> FetchReport:
    """Store every message of a logged-in session in ``store``; DELE them if ``delete``.

    Ends the session (QUIT) on success; on a connection, protocol or timeout error
    the connection is closed and the report carries the error: nothing is lost, and
    the next run picks up where this one stopped.
    """
    report = FetchReport()
    dele_now: list[str] = []
    try:
        uids = await client.uidl()
        present = set(uids.values())
        gone = sorted(store.unconfirmed - present)
        if gone:  # deleted on the server after all (a QUIT whose +OK was lost)
            store.note_deleted(gone)
            report.deleted.extend(gone)
        for number, uid in sorted(uids.items()):
            if store.has(uid):
                report.already.append(uid)
            else:
                path, file = store.begin(uid)
                try:
                    await client.retr_to(number, file.write)
                except BaseException:
                    store.abort(path, file)
                    raise
                store.commit(uid, path, file)
                report.stored.append(uid)
            if delete:
                await client.dele(number)
                store.note_dele([uid])
                dele_now.append(uid)
        await client.quit()
    except AsyncNetError as exc:
        client.close()
        report.error = exc
        report.unconfirmed = sorted(store.unconfirmed)
        return report
    store.note_deleted(dele_now)
    report.deleted.extend(dele_now)
    report.unconfirmed = sorted(store.unconfirmed)
    return report
