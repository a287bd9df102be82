"""The FTP client: ftplib's verbs, async, on aioftp, with typed errors and limits.

::

    async with FTPClient("127.0.0.1", 2121, user="guest", password=secret) as ftp:
        with open("local.bin", "wb") as f:
            await ftp.retrieve("remote.bin", f.write)       # retrbinary
        await ftp.retrieve_lines("notes.txt", print)        # retrlines
        await ftp.store("copy.bin", Path("local.bin"))      # storbinary
        result = await ftp.download("remote.bin", Path("x.bin"), resume=True)

Every failure is an :class:`~asyncnet.errors.AsyncNetError`: a refused command is an
:class:`FTPReplyError` naming the reply and the phase; socket failures and timeouts
are translated in one place (:meth:`FTPSession._guard`).
"""

from __future__ import annotations

import builtins
import inspect
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, cast

from ..errors import StateError
from . import _downloads as downloads
from ._downloads import RemoteEntry
from ._errors import FTPPermanentError, FTPReplyError, IntegrityError
from ._integrity import DownloadResult, RemoteFingerprint
from ._progress import ProgressCallback, TransferProgress
from ._safety import check_argument
from ._session import FTPSession
from ._sources import Source, iter_source, source_size
from ._streams import RemoteReader, RemoteWriter

__all__ = ["FTPClient", "FTPSession", "RemoteEntry"]

Chunk = Callable[[bytes], Any]
MAX_TEXT_LINE = 64 * 1024


def _plain_file(source: object) -> bool:
    """An open file of the standard types, seekable: what sendfile(2) can send from.

    Only the exact types: a subclass (or a wrapper) may change what ``read()`` gives.
    """
    if type(source) not in (io.BufferedReader, io.FileIO):
        return False
    try:
        return bool(source.seekable())  # type: ignore[attr-defined]
    except (OSError, ValueError):
        return False


class FTPClient(FTPSession):
    """An FTP or FTPS session: connect and log in on ``start()``.

    Options (see :class:`FTPSession`): ``user``, ``password``, ``tls`` (``True`` or
    ``"explicit"``: AUTH TLS; ``"implicit"``: TLS from the start, port 990) and
    ``ssl`` (an ``ssl.SSLContext``, ``True``/``None`` for the system's trust store),
    ``connect_timeout``, ``command_timeout``, ``idle_timeout`` (a data connection with
    no bytes for that long), ``block_size`` (the most one callback gets, 256 KiB),
    ``encoding``, ``passive`` (``("epsv", "pasv")``; ``False`` for active mode:
    EPRT/PORT) and ``max_reply_lines``.
    """

    def open_read(self, path: str, *, offset: int = 0, ascii: bool = False) -> RemoteReader:
        """``async with client.open_read(path) as r: async for chunk in r`` (RETR)."""
        return RemoteReader(
            self, f"RETR {check_argument(path)}", offset=offset, conn_type="A" if ascii else "I"
        )

    def open_write(self, path: str, *, append: bool = False) -> RemoteWriter:
        """``async with client.open_write(path) as w: await w.write(data)`` (STOR/APPE)."""
        return RemoteWriter(self, f"{'APPE' if append else 'STOR'} {check_argument(path)}")

    # -- ftplib's verbs -------------------------------------------------------------

    async def retrieve(
        self,
        path: str,
        callback: Chunk,
        *,
        offset: int = 0,
        progress: ProgressCallback | None = None,
    ) -> int:
        """retrbinary: call ``callback(chunk)`` (sync or async) for each block; bytes."""
        state = await self._progress_state(path, "download", progress, offset)
        async with self.open_read(path, offset=offset) as reader:
            # The first chunk says what kind of callback this is: a plain function gets
            # every later chunk straight from the data connection (reader.pump, no task
            # switch per chunk); one that returns awaitables is awaited chunk by chunk.
            chunk = await reader.read()
            result = callback(chunk) if chunk else None
            if chunk:
                self._advance(state, progress, len(chunk))
            if inspect.isawaitable(result):
                await result
                async for chunk in reader:
                    result = callback(chunk)
                    if inspect.isawaitable(result):
                        await result
                    self._advance(state, progress, len(chunk))
            elif chunk:

                def sink(chunk: bytes) -> None:
                    if inspect.isawaitable(late := callback(chunk)):
                        if inspect.iscoroutine(late):
                            late.close()  # never to be awaited: no "never awaited" warning
                        raise StateError(
                            "retrieve(): the callback returned an awaitable after returning "
                            "plain values for earlier chunks; make it always one or the other"
                        )
                    self._advance(state, progress, len(chunk))

                await reader.pump(sink)
        self._advance(state, progress, 0, finished=True)
        return reader.bytes

    async def retrieve_lines(
        self, path: str, callback: Callable[[str], Any], *, encoding: str = "utf-8"
    ) -> int:
        """retrlines: call ``callback(line)`` per line, without its line end; lines."""
        count = 0
        async with self.open_read(path, ascii=True) as reader:
            async for line in reader.lines(MAX_TEXT_LINE):
                result = callback(line.decode(encoding, "replace"))
                if inspect.isawaitable(result):
                    await result
                count += 1
        return count

    async def store(
        self,
        path: str,
        source: Source,
        *,
        progress: ProgressCallback | None = None,
        verify: bool = True,
    ) -> int:
        """storbinary: send a path, binary file, bytes or async iterator; bytes sent.

        With ``verify`` the server's SIZE must then equal the bytes sent (skipped when
        the server has no SIZE/MLST).
        """
        state = TransferProgress(path, "upload", total=source_size(source))
        async with self.open_write(path) as writer:
            if isinstance(source, str | os.PathLike) and writer.can_sendfile:
                # A file on disk goes out with sendfile(2): no copy through Python.
                with open(source, "rb") as file:  # noqa: ASYNC230 - opening is quick
                    await self._send_file(writer, file, 0, state, progress)
            elif _plain_file(source) and writer.can_sendfile:
                opened = cast(BinaryIO, source)
                start = opened.tell()
                await self._send_file(writer, opened, start, state, progress)
                opened.seek(start + writer.bytes)  # where reading it would have left it
            else:
                async for chunk in iter_source(source, self.block_size):
                    await writer.write(chunk)
                    self._advance(state, progress, len(chunk))
        self._advance(state, progress, 0, finished=True)
        if verify:
            remote = await self.fingerprint(path)
            if remote.size is not None and remote.size != writer.bytes:
                raise IntegrityError(
                    f"STOR {path}: sent {writer.bytes} bytes but the server has {remote.size}"
                )
        return writer.bytes

    async def _send_file(
        self,
        writer: RemoteWriter,
        file: BinaryIO,
        start: int,
        state: TransferProgress,
        progress: ProgressCallback | None,
    ) -> None:
        # One block at a time, so that the idle timeout and progress keep their sense.
        while sent := await writer.sendfile(file, start + writer.bytes, self.block_size):
            self._advance(state, progress, sent)

    async def _progress_state(
        self, path: str, direction: Any, progress: ProgressCallback | None, offset: int
    ) -> TransferProgress:
        total = None
        if progress is not None:
            try:
                total = (await self.fingerprint(path)).size
            except FTPReplyError:
                total = None  # RETR itself will say what is wrong
        state = TransferProgress(path, direction, total=total, done=offset, offset=offset)
        if progress is not None:
            progress(state)
        return state

    @staticmethod
    def _advance(
        state: TransferProgress, progress: ProgressCallback | None, n: int, finished: bool = False
    ) -> None:
        state.done += n
        state.finished = finished
        if progress is not None:
            progress(state)

    # -- files and directories ----------------------------------------------------------

    async def size(self, path: str) -> int | None:
        """SIZE in bytes, or None when the server does not implement SIZE."""
        check_argument(path)
        if self._ftp.current_type != "I":
            await self._command("TYPE I", "200")
            self._ftp.current_type = "I"
        try:
            _, info = await self._command(f"SIZE {path}", "213")
        except FTPPermanentError as exc:
            if exc.code in ("500", "502"):
                return None
            raise
        return int(info[-1].strip())

    async def fingerprint(self, path: str) -> RemoteFingerprint:
        """Size and modification time (MLST, else SIZE and MDTM); None where unknown."""
        check_argument(path)
        try:
            _, info = await self._command(f"MLST {path}", "2xx")
            facts = downloads.parse_facts(info)
            listed = facts.get("size")
            return RemoteFingerprint(path, int(listed) if listed else None, facts.get("modify"))
        except FTPPermanentError as exc:
            if exc.code not in ("500", "501", "502"):
                raise
        size = await self.size(path)
        try:
            _, info = await self._command(f"MDTM {path}", "213")
            modify: str | None = info[-1].strip()
        except FTPPermanentError as exc:
            if exc.code not in ("500", "501", "502"):
                raise
            modify = None
        return RemoteFingerprint(path, size, modify)

    async def list(self, path: str = "") -> builtins.list[RemoteEntry]:
        """The names in a directory (MLSD; LIST where MLSD is not implemented)."""
        return await downloads.list_directory(self, path)

    async def mkdir(self, path: str) -> None:
        """MKD: make one directory."""
        await self._command(f"MKD {check_argument(path)}", "257")

    async def rmdir(self, path: str) -> None:
        """RMD: remove an empty directory."""
        await self._command(f"RMD {check_argument(path)}", "250")

    async def remove(self, path: str) -> None:
        """DELE: remove a file."""
        await self._command(f"DELE {check_argument(path)}", "2xx")

    async def rename(self, source: str, destination: str) -> None:
        """RNFR + RNTO."""
        check_argument(destination)
        await self._command(f"RNFR {check_argument(source)}", "350")
        await self._command(f"RNTO {destination}", "2xx")

    async def download(
        self,
        path: str,
        destination: str | os.PathLike[str],
        *,
        resume: bool = False,
        sha256: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> DownloadResult:
        """RETR into ``destination`` via ``.part``, checked against SIZE (and sha256)."""
        return await downloads.download_file(
            self, path, Path(destination), resume=resume, sha256=sha256, progress=progress
        )

    async def download_tree(
        self,
        path: str,
        destination: str | os.PathLike[str],
        *,
        max_depth: int = 16,
        max_files: int = 10_000,
        progress: ProgressCallback | None = None,
    ) -> builtins.list[DownloadResult]:
        """Download a directory recursively; server-supplied names are sanitised."""
        return await downloads.download_tree(
            self,
            path,
            Path(destination),
            max_depth=max_depth,
            max_files=max_files,
            progress=progress,
        )
