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
are translated in one place (:meth:`FTPClient._guard`).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import inspect
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import aioftp

from ..clients._errors import network_errors
from ..errors import ConfigurationError, LineTooLong, NetworkError, format_peer
from . import downloads
from ._aioftp import PinnedClient
from .downloads import RemoteEntry
from .errors import (
    FTPAuthError,
    FTPConnectionClosed,
    FTPPermanentError,
    FTPReplyError,
    FTPTemporaryError,
    IntegrityError,
)
from .integrity import DownloadResult, RemoteFingerprint
from .progress import ProgressCallback, TransferProgress
from .safety import check_argument
from .sources import Source, iter_source, source_size
from .streams import RemoteReader, RemoteWriter

__all__ = ["FTPClient", "RemoteEntry"]

T = TypeVar("T")
Chunk = Callable[[bytes], Any]
MAX_TEXT_LINE = 64 * 1024


def _reply_error(exc: aioftp.StatusCodeError, phase: str, peer: Any, auth: bool) -> FTPReplyError:
    code = str(exc.received_codes[-1])
    info = exc.info if isinstance(exc.info, list) else [exc.info]
    text = " ".join(line.lstrip("- ").strip() for line in info if line.strip())[:500]
    cls: type[FTPReplyError] = FTPReplyError
    if code.startswith("5"):
        cls = FTPAuthError if auth or code == "530" else FTPPermanentError
    elif code.startswith("4"):
        cls = FTPTemporaryError
    return cls(code, text, phase=phase, peer=peer)


class FTPClient:
    """An FTP (or explicit FTPS) session: connect and log in on ``start()``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 21,
        *,
        user: str = "anonymous",
        password: str = "anonymous@",
        tls: bool = False,
        ssl_context: Any = None,
        connect_timeout: float = 10.0,
        command_timeout: float = 30.0,
        idle_timeout: float = 30.0,
        block_size: int = 64 * 1024,
        encoding: str = "utf-8",
        passive: Sequence[str] = ("epsv", "pasv"),
        max_reply_lines: int = 1000,
    ) -> None:
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("command_timeout", command_timeout),
            ("idle_timeout", idle_timeout),
        ):
            if value <= 0:
                raise ConfigurationError(f"{name} must be positive, not {value!r}")
        if block_size <= 0:
            raise ConfigurationError(f"block_size must be positive, not {block_size!r}")
        if not passive or any(p.lower() not in ("epsv", "pasv") for p in passive):
            raise ConfigurationError(f"passive must name 'epsv' and/or 'pasv', not {passive!r}")
        self.host, self.port = host, port
        self.user = check_argument(user, "user name")
        self._password = check_argument(password, "password")
        self.tls, self.ssl_context = tls, ssl_context
        self.connect_timeout, self.command_timeout = connect_timeout, command_timeout
        self.idle_timeout, self.block_size = idle_timeout, block_size
        self._ftp = PinnedClient(
            socket_timeout=idle_timeout,
            connection_timeout=connect_timeout,
            encoding=encoding,
            passive_commands=tuple(p.lower() for p in passive),
            max_reply_lines=max_reply_lines,
            tls_hostname=host,
        )
        self._lock = asyncio.Lock()
        self._broken: str | None = "not connected: call start() or use `async with`"
        self.greeting: list[str] = []

    @property
    def peer(self) -> Any:
        """The server's address once connected (else host and port as given)."""
        return self._ftp.control_peer or (self.host, self.port)

    @property
    def passive_hosts_replaced(self) -> int:
        """How many PASV replies named a host other than the control peer (ignored)."""
        return int(self._ftp.passive_hosts_replaced)

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> Self:
        """Connect, optionally AUTH TLS, log in and switch to binary mode."""
        try:
            async with self._guard("connect", self.connect_timeout):
                self.greeting = await self._ftp.connect(self.host, self.port)
            self._broken = None
            if self.tls:
                async with self._guard("AUTH TLS", self.connect_timeout):
                    await self._ftp.upgrade_to_tls(self.ssl_context)
            async with self._guard(f"login as {self.user!r}", self.command_timeout, auth=True):
                await self._ftp.login(self.user, self._password)
            await self._command("TYPE I", "200")
            self._ftp.current_type = "I"
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Close the control connection now (no QUIT); see :meth:`stop`."""
        if self._broken is None:
            self._broken = "the client was closed"
        if self._ftp._stream is not None:
            self._ftp.close()

    async def wait_closed(self) -> None:
        """Wait until the control connection's socket is closed."""
        if self._ftp._stream is not None:
            with contextlib.suppress(OSError):  # already reset: closed all the same
                await self._ftp._stream.writer.wait_closed()

    async def stop(self, grace: float | None = None) -> None:
        """Say QUIT (waiting at most ``grace`` seconds, default 2) and close."""
        if self._broken is None and not self._lock.locked():
            try:
                async with asyncio.timeout(2.0 if grace is None else grace):
                    await self._ftp.command("QUIT", "2xx")
            except (OSError, TimeoutError, aioftp.AIOFTPException, ValueError):
                pass  # leaving anyway: the server's goodbye changes nothing
            except FTPConnectionClosed:
                pass
        self.close()
        await self.wait_closed()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- the one error boundary ----------------------------------------------------

    @asynccontextmanager
    async def _guard(
        self, phase: str, timeout: float | None, *, auth: bool = False
    ) -> AsyncIterator[None]:
        try:
            async with network_errors(self.peer, phase, timeout):
                try:
                    yield
                except ssl.SSLError as exc:
                    # An SSLError's errno is OpenSSL's, not the OS's: name the TLS reason.
                    reason = exc.reason or str(exc)
                    raise NetworkError(
                        f"{phase} with {format_peer(self.peer)} failed: TLS: {reason}",
                        self.peer,
                        phase,
                    ) from exc
        except aioftp.StatusCodeError as exc:
            raise _reply_error(exc, phase, self.peer, auth) from exc
        except FTPConnectionClosed as exc:
            self._broken = str(exc)
            raise FTPConnectionClosed(f"{phase}: {exc}", self.peer, phase) from exc

    def _check_open(self) -> None:
        if self._broken is not None:
            raise FTPConnectionClosed(
                f"FTP session with {self.host}:{self.port} is not usable ({self._broken})",
                self.peer,
            )

    async def _command(self, line: str, expected: str | tuple[str, ...]) -> tuple[str, list[str]]:
        self._check_open()
        phase = "PASS ***" if line.startswith("PASS ") else line
        async with self._lock, self._guard(phase, self.command_timeout):
            code, info = await self._ftp.command(line, expected)
        return str(code), info

    # -- transfers (used by streams.py) ----------------------------------------------

    async def _begin_transfer(
        self, command: str, *, offset: int, conn_type: Literal["I", "A"]
    ) -> Any:
        self._check_open()
        await self._lock.acquire()
        try:
            async with self._guard(command, self.command_timeout):
                stream = await self._ftp.open_data_stream(
                    command, offset=offset, conn_type=conn_type
                )
            return stream
        except BaseException:
            self._lock.release()
            raise

    async def _data_io(self, command: str, io: Awaitable[T]) -> T:
        async with self._guard(f"{command} (data)", None):
            return await io

    async def _end_transfer(
        self, stream: Any, command: str, *, ok: bool, error: BaseException | None
    ) -> None:
        try:
            stream.close()
            if ok:
                async with self._guard(f"{command} (final reply)", self.command_timeout):
                    await self._ftp.command(None, "2xx", "1xx")
                return
            if not isinstance(error, asyncio.CancelledError) and self._broken is None:
                # We gave up mid-transfer: the server answers 426 or 226 when it sees
                # the data connection close.  Read that reply to keep the session usable.
                try:
                    async with asyncio.timeout(min(self.command_timeout, 2.0)):
                        await self._ftp.final_reply()
                    return
                except (OSError, TimeoutError, aioftp.AIOFTPException, FTPConnectionClosed):
                    pass
            self._broken = f"interrupted {command}; reconnect"
            self.close()
        finally:
            self._lock.release()

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
            async for chunk in reader:
                result = callback(chunk)
                if inspect.isawaitable(result):
                    await result
                self._advance(state, progress, len(chunk))
        self._advance(state, progress, 0, finished=True)
        return reader.bytes

    async def retrieve_lines(
        self, path: str, callback: Callable[[str], Any], *, encoding: str = "utf-8"
    ) -> int:
        """retrlines: call ``callback(line)`` per line, without its line end; lines."""
        count, pending = 0, b""
        async with self.open_read(path, ascii=True) as reader:
            async for chunk in reader:
                *lines, pending = (pending + chunk).split(b"\n")
                if len(pending) > MAX_TEXT_LINE:
                    raise LineTooLong(MAX_TEXT_LINE, len(pending), self.peer)
                for line in lines:
                    result = callback(line.rstrip(b"\r").decode(encoding, "replace"))
                    if inspect.isawaitable(result):
                        await result
                    count += 1
        if pending:
            result = callback(pending.rstrip(b"\r").decode(encoding, "replace"))
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
