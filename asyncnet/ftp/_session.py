"""One FTP control connection: lifecycle, the error boundary, one transfer at a time.

:class:`FTPSession` is the base of :class:`~asyncnet.ftp.FTPClient`: it connects and
logs in, serialises commands (FTP runs one command or transfer at a time per
connection), translates aioftp's and the socket layer's failures into asyncnet
errors in one place (:meth:`FTPSession._guard`), and keeps the session usable (or
marks it broken) when a transfer is abandoned.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, Self, TypeAlias, TypeVar

import aioftp

from .._boundary import network_errors
from .._lifecycle import Endpoint
from .._tls import SSLSetting, resolve_ssl
from ..errors import ConfigurationError, NetworkError, format_peer
from ._aioftp import PinnedClient
from ._errors import (
    FTPAuthError,
    FTPConnectionClosed,
    FTPPermanentError,
    FTPReplyError,
    FTPTemporaryError,
)
from ._safety import check_argument

__all__ = ["FTPSession", "TLSMode"]

TLSMode: TypeAlias = Literal["none", "explicit", "implicit"]
"""How an FTP session uses TLS: not at all, AUTH TLS (port 21) or from the start (990)."""

T = TypeVar("T")


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


class FTPSession(Endpoint):
    """An FTP or FTPS control connection: connect and log in on ``start()``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        user: str = "anonymous",
        password: str = "anonymous@",
        tls: bool | TLSMode = False,
        ssl: SSLSetting = None,
        ssl_context: ssl_module.SSLContext | None = None,
        connect_timeout: float = 10.0,
        command_timeout: float = 30.0,
        idle_timeout: float = 30.0,
        block_size: int = 256 * 1024,
        encoding: str = "utf-8",
        passive: bool | Sequence[str] = ("epsv", "pasv"),
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
        active = passive is False
        if passive is True or passive is False:
            passive = ("epsv", "pasv")
        if not passive or any(p.lower() not in ("epsv", "pasv") for p in passive):
            raise ConfigurationError(
                f"passive must be True, False (active mode: PORT/EPRT) or name 'epsv' "
                f"and/or 'pasv', not {passive!r}"
            )
        if ssl_context is not None:  # the older spelling of ssl=context
            if ssl is not None:
                raise ConfigurationError("give ssl= or its older name ssl_context=, not both")
            ssl = ssl_context
        mode = "explicit" if tls is True else "none" if tls is False else tls
        if mode not in ("none", "explicit", "implicit"):
            raise ConfigurationError(
                f"tls must be False, True, 'explicit' or 'implicit', not {tls!r}"
            )
        if ssl is False and mode != "none":
            raise ConfigurationError(f"tls={tls!r} needs TLS, but ssl=False turns it off")
        context = None if ssl is None or ssl is True else resolve_ssl(ssl)
        self.tls_mode: TLSMode = mode
        """``"none"``, ``"explicit"`` (AUTH TLS after connecting) or ``"implicit"`` (TLS first)."""
        self.host = host
        self.port = port if port is not None else (990 if mode == "implicit" else 21)
        self.user = check_argument(user, "user name")
        self._password = check_argument(password, "password")
        self.tls = mode != "none"
        self.ssl_context = context
        """The TLS context given (None: the system's trust store, built when needed)."""
        self.connect_timeout, self.command_timeout = connect_timeout, command_timeout
        self.idle_timeout, self.block_size = idle_timeout, block_size
        self._ftp = PinnedClient(
            socket_timeout=idle_timeout,
            connection_timeout=connect_timeout,
            encoding=encoding,
            passive_commands=tuple(p.lower() for p in passive),
            active=active,
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
            if self.tls_mode == "implicit":
                context = self.ssl_context or await asyncio.to_thread(
                    ssl_module.create_default_context
                )
                self._ftp.ssl = context
            async with self._guard("connect", self.connect_timeout):
                self.greeting = await self._ftp.connect(self.host, self.port)
            self._broken = None
            if self.tls_mode == "explicit":
                async with self._guard("AUTH TLS", self.connect_timeout):
                    await self._ftp.upgrade_to_tls(self.ssl_context)
            elif self.tls_mode == "implicit":
                # RFC 4217's protection commands, as after AUTH TLS: private data too.
                await self._command("PBSZ 0", "200")
                await self._command("PROT P", "200")
            async with self._guard(f"login as {self.user!r}", self.command_timeout, auth=True):
                await self._ftp.login(self.user, self._password)
            await self._command("TYPE I", "200")
            self._ftp.current_type = "I"
        except BaseException:
            self.close()
            raise
        return self

    def close(self, grace: float | None = None) -> None:
        """Close the control connection now (no QUIT, ``grace`` unused); see :meth:`stop`."""
        if self._broken is None:
            self._broken = "the client was closed"
        self._ftp.close()  # a no-op before connect()

    async def wait_closed(self) -> None:
        """Wait until the control connection's socket is closed."""
        writer = self._ftp.control_writer
        if writer is not None:
            with contextlib.suppress(OSError):  # already reset: closed all the same
                await writer.wait_closed()

    async def stop(self, grace: float | None = None) -> None:
        """Say QUIT (waiting at most ``grace`` seconds, default 2) and close."""
        if self._broken is None and not self._lock.locked():
            try:
                async with asyncio.timeout(2.0 if grace is None else grace):
                    await self._ftp.command("QUIT", "2xx")
            except (OSError, TimeoutError, RuntimeError, ValueError, aioftp.AIOFTPException):
                pass  # leaving anyway: the server's goodbye changes nothing
        self.close()
        await self.wait_closed()

    # -- the one error boundary ----------------------------------------------------

    @asynccontextmanager
    async def _guard(
        self, phase: str, timeout: float | None, *, auth: bool = False, control: bool = True
    ) -> AsyncIterator[None]:
        """Translate failures of the block, naming the phase; see the class docstring.

        With ``control`` (a command on the control connection), anything but a clean
        reply (a timeout, a reset, a reply too long, a cancellation) leaves the
        connection in an unknown state, so it is closed and the session marked unusable.
        """
        try:
            async with network_errors(self.peer, phase, timeout):
                try:
                    yield
                except ssl_module.SSLError as exc:
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
        except BaseException as exc:
            if control and self._broken is None:
                self._broken = f"{phase} failed: {type(exc).__name__}; reconnect"
                self.close()
            raise

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
        async with self._guard(f"{command} (data)", None, control=False):
            result = await io
        # On 3.11, asyncio.wait_for inside aioftp can swallow a cancellation that races
        # a finished read: the transfer would then run on to its end after Ctrl-C.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        return result

    async def _end_transfer(
        self, stream: Any, command: str, *, ok: bool, error: BaseException | None
    ) -> None:
        try:
            if ok:
                stream.close()
                async with self._guard(f"{command} (final reply)", self.command_timeout):
                    await self._ftp.command(None, "2xx", "1xx")
                return
            resync = not isinstance(error, asyncio.CancelledError) and self._broken is None
            if resync and await self._abort_transfer(stream):
                return
            stream.close()
            self._broken = f"interrupted {command}; reconnect"
            self.close()
        finally:
            self._lock.release()

    async def _abort_transfer(self, stream: Any) -> bool:
        """ABOR a transfer we gave up on; True if the session is back in step.

        ABOR goes out while the data connection is still open, and what still arrives
        on it is read and dropped until the transfer's reply comes: a server that
        sees the data connection reset mid-write may drop the whole session (aioftp
        does), and one that handles ABOR only between transfers (vsftpd) must be
        able to finish writing.  Two replies follow, one for the transfer (426, or
        226 if it had finished) and one for ABOR (226/225, or 502 where it is not
        implemented); silence or a closed connection, and the session is given up.
        """

        async def discard() -> None:
            with contextlib.suppress(OSError, TimeoutError, RuntimeError):
                while await stream.read(self.block_size):
                    pass

        drain = asyncio.ensure_future(discard())
        try:
            async with asyncio.timeout(min(self.command_timeout, 2.0)):
                await self._ftp.command("ABOR")
                for _ in range(2):  # whatever the codes: a 502 for ABOR is still in step
                    await self._ftp.final_reply()
                    drain.cancel()
                    stream.close()
            return True
        except (OSError, TimeoutError, RuntimeError, aioftp.AIOFTPException, FTPConnectionClosed):
            return False
        finally:
            drain.cancel()
            stream.close()
            await asyncio.wait([drain])  # unlike `await drain`, keeps our own cancellation
