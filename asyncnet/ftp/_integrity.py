"""Downloads that never leave a half-written file under the final name.

Bytes go to ``name.part``; beside it ``name.part.json`` records what the server said
about the file when the download began (size, modification time), so a later
``resume=True`` continues only if the file on the server is still the same one.
When every byte has arrived and checked out, the part file is fsynced, renamed over
the final name and the directory is fsynced, so a crash leaves either the old state
or the complete new file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["DownloadResult", "PartFile", "RemoteFingerprint"]

_HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class RemoteFingerprint:
    """What identifies one version of a remote file: its size and modification time."""

    path: str
    size: int | None
    modify: str | None

    @property
    def usable(self) -> bool:
        """True when resuming can be checked (a size and a time are known)."""
        return self.size is not None and self.modify is not None


@dataclass(frozen=True)
class DownloadResult:
    """A finished, verified download."""

    path: Path
    size: int
    sha256: str
    resumed_from: int = 0
    """Bytes kept from an earlier partial download (0: downloaded from the start)."""


class PartFile:
    """``dest.part`` plus its sidecar: open, append, hash, commit."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.part = dest.with_name(dest.name + ".part")
        self.sidecar = dest.with_name(dest.name + ".part.json")
        self._file: BinaryIO | None = None
        self._hash = hashlib.sha256()
        self.size = 0

    def resumable_offset(self, remote: RemoteFingerprint) -> int:
        """Bytes of ``.part`` that may be kept: 0 unless the remote file is unchanged."""
        if not remote.usable or not self.part.exists():
            return 0
        try:
            saved = RemoteFingerprint(**json.loads(self.sidecar.read_text()))
        except (OSError, ValueError, TypeError):
            return 0
        have = self.part.stat().st_size
        if saved != remote or remote.size is None or have > remote.size:
            return 0
        return have

    def open(self, remote: RemoteFingerprint, offset: int) -> None:
        """Open for writing at ``offset`` (0 truncates), hashing what is kept."""
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        if offset:
            self._file = open(self.part, "r+b")  # noqa: SIM115 - closed in close()
            while chunk := self._file.read(min(_HASH_BLOCK, offset - self._file.tell())):
                self._hash.update(chunk)
            self._file.truncate(offset)
        else:
            self._file = open(self.part, "wb")  # noqa: SIM115 - closed in close()
            self.sidecar.write_text(json.dumps(asdict(remote)))
        self.size = offset

    def write(self, chunk: bytes) -> None:
        """Append a chunk (and hash it)."""
        assert self._file is not None, "open() first"
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of everything in the part file so far."""
        return self._hash.hexdigest()

    def close(self) -> None:
        """Flush and close, keeping ``.part`` (and its sidecar) for a later resume."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def commit(self) -> None:
        """fsync, rename ``.part`` over the final name, fsync the directory.

        Blocking: call it in a thread.
        """
        assert self._file is not None, "open() first"
        self._file.flush()
        os.fsync(self._file.fileno())
        self.close()
        os.replace(self.part, self.dest)
        self.sidecar.unlink(missing_ok=True)
        fd = os.open(self.dest.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
