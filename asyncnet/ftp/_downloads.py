"""Listings, verified downloads and recursive downloads (the parts that touch disk).

Names in a listing come from the server: they are kept as sent in
:class:`RemoteEntry`, and checked by :func:`~asyncnet.ftp._safety.local_path_for`
before any local path is made from them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ..errors import PeerProtocolError
from ._errors import (
    FTPReplyError,
    IncompleteTransfer,
    IntegrityError,
    OversizedTransfer,
    TreeLimitExceeded,
)
from ._integrity import DownloadResult, PartFile
from ._progress import ProgressCallback, TransferProgress
from ._safety import check_argument, local_path_for, safe_name
from ._streams import RemoteReader

if TYPE_CHECKING:
    from ._client import FTPClient

__all__ = ["RemoteEntry", "download_file", "download_tree", "list_directory", "parse_facts"]

MAX_LIST_ENTRIES = 100_000
MAX_LIST_LINE = 8192


@dataclass(frozen=True)
class RemoteEntry:
    """One name from a directory listing, exactly as the server sent it."""

    name: str
    type: str
    """"file", "dir", "link" (LIST) or whatever an MLSD ``type`` fact says."""
    size: int | None = None
    modify: str | None = None
    facts: dict[str, str] = field(default_factory=dict, compare=False)


def parse_facts(info: list[str]) -> dict[str, str]:
    """The facts of an MLST reply (``size=3;modify=...; name`` on its middle line)."""
    for line in info[1:]:
        facts, sep, _ = line.strip().partition(" ")
        if sep and "=" in facts:
            return {
                key.lower(): value
                for key, _, value in (f.partition("=") for f in facts.split(";") if f)
            }
    raise PeerProtocolError(f"MLST reply without facts: {info[:3]!r}")


def _entry(name: PurePosixPath, info: Any) -> RemoteEntry:
    size = info.get("size")
    return RemoteEntry(
        name=str(name),
        type=str(info.get("type", "")).lower(),
        size=int(size) if size and str(size).isdigit() else None,
        modify=info.get("modify"),
        facts={k: str(v) for k, v in info.items()},
    )


async def list_directory(client: FTPClient, path: str) -> list[RemoteEntry]:
    """MLSD ``path`` (LIST when the server has no MLSD), parsed, ``.``/``..`` left out."""
    check_argument(path)
    reader = RemoteReader(client, f"MLSD {path}".strip(), conn_type="A")
    parse: Any = client._ftp.parse_mlsx_line
    try:
        await reader.__aenter__()
    except FTPReplyError as exc:
        if not exc.code.startswith("50"):
            raise
        reader = RemoteReader(client, f"LIST {path}".strip(), conn_type="A")
        parse = client._ftp.parse_list_line
        await reader.__aenter__()
    entries: list[RemoteEntry] = []
    try:
        async for line in reader.lines(MAX_LIST_LINE):
            if line.strip():
                entries.append(_parse(parse, line))
            if len(entries) > MAX_LIST_ENTRIES:
                raise PeerProtocolError(f"listing of {path!r} has over {MAX_LIST_ENTRIES} names")
    except BaseException as exc:
        await reader.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    await reader.__aexit__(None, None, None)
    return [e for e in entries if e.name not in (".", "..") and e.type not in ("cdir", "pdir")]


def _parse(parse: Any, line: bytes) -> RemoteEntry:
    try:
        name, info = parse(line)
    except (ValueError, IndexError, KeyError) as exc:
        raise PeerProtocolError(f"cannot parse listing line {line[:100]!r}") from exc
    return _entry(name, info)


async def download_file(
    client: FTPClient,
    path: str,
    dest: Path,
    *,
    resume: bool,
    sha256: str | None,
    progress: ProgressCallback | None,
) -> DownloadResult:
    """RETR into ``dest.part``; check count, 226 and sha256; fsync and rename.

    The count is checked as bytes arrive too: the first byte past SIZE ends the
    transfer with :class:`OversizedTransfer`.
    """
    remote = await client.fingerprint(path)
    part = PartFile(dest)
    offset = part.resumable_offset(remote) if resume else 0
    state = TransferProgress(path, "download", total=remote.size, done=offset, offset=offset)
    try:
        try:
            async with client.open_read(path, offset=offset) as reader:
                await asyncio.to_thread(part.open, remote, offset)
                if progress is not None:
                    progress(state)

                def sink(chunk: bytes) -> None:
                    if remote.size is not None and part.size + len(chunk) > remote.size:
                        # One byte past SIZE proves the mismatch; reading on would let
                        # a lying server fill the disk.
                        part.write(chunk[: remote.size + 1 - part.size])
                        raise OversizedTransfer(
                            f"RETR {path}: SIZE is {remote.size} but more arrived; stopped "
                            f"at {part.size} bytes, kept {part.part.name}",
                            received=part.size,
                            expected=remote.size,
                        )
                    part.write(chunk)
                    state.done += len(chunk)
                    if progress is not None:
                        progress(state)

                # Straight from the data connection to the part file: no task switch
                # per chunk.  Writes go to the page cache (fsync comes once, at the
                # end); writing and hashing in a worker thread measured no faster on
                # 2 busy cores, so they stay here.
                await reader.pump(sink)
        except FTPReplyError as exc:  # e.g. 426 after the data connection broke
            if remote.size is not None and part.size < remote.size:
                raise IncompleteTransfer(
                    f"RETR {path}: {part.size} of {remote.size} bytes, then: {exc}",
                    received=part.size,
                    expected=remote.size,
                ) from exc
            raise
        if remote.size is not None and part.size != remote.size:
            raise IncompleteTransfer(
                f"RETR {path}: server said 226 after {part.size} bytes, but SIZE is "
                f"{remote.size}; kept {part.part.name}",
                received=part.size,
                expected=remote.size,
            )
        if sha256 is not None and part.sha256 != sha256.lower():
            raise IntegrityError(
                f"RETR {path}: sha256 {part.sha256} does not match the expected {sha256}"
            )
        await asyncio.to_thread(part.commit)
    finally:
        part.close()
    state.finished = True
    if progress is not None:
        progress(state)
    return DownloadResult(dest, part.size, part.sha256, resumed_from=offset)


async def download_tree(
    client: FTPClient,
    path: str,
    dest: Path,
    *,
    max_depth: int,
    max_files: int,
    progress: ProgressCallback | None,
) -> list[DownloadResult]:
    """Walk ``path`` (checking every name and the caps) first, then download."""
    files: list[tuple[str, Path]] = []
    dirs: list[Path] = []
    queue: deque[tuple[str, PurePosixPath, int]] = deque([(path, PurePosixPath(), 0)])
    while queue:
        remote_dir, relative, depth = queue.popleft()
        for entry in await client.list(remote_dir):
            local = local_path_for(dest, relative / safe_name(entry.name))
            remote = f"{remote_dir.rstrip('/')}/{entry.name}" if remote_dir else entry.name
            if entry.type == "dir":
                if depth + 1 > max_depth:
                    raise TreeLimitExceeded(
                        f"{remote!r} is deeper than max_depth={max_depth}; nothing downloaded"
                    )
                dirs.append(local)
                queue.append((remote, relative / entry.name, depth + 1))
            elif entry.type == "file":
                files.append((remote, local))
                if len(files) > max_files:
                    raise TreeLimitExceeded(
                        f"{path!r} holds more than max_files={max_files} files; nothing downloaded"
                    )
    for directory in [dest, *dirs]:
        directory.mkdir(parents=True, exist_ok=True)
    return [await client.download(remote, local, progress=progress) for remote, local in files]
