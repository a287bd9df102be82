"""aioftp's server on loopback with asyncnet's lifecycle, for demos and tests.

::

    async with FTPServer(root, users={"guest": secret}) as server:
        print("ftp on", server.address)

It binds 127.0.0.1 (port 0: any free port, read back from ``server.address``)
unless ``all_interfaces=True``.  It is a convenience for local use, not a
hardened public FTP server, but what it serves stays what it was given:

* **The root is a boundary, symlinks included.**  aioftp maps a client's path under
  the root lexically and then follows whatever symlinks it meets on disk; here the
  path of every command (RETR, STOR, APPE, LIST, MLSD, MLST, CWD, CDUP, DELE, RMD,
  MKD, RNFR, RNTO) is resolved first (:func:`os.path.realpath`: links followed, and
  a path that does not exist yet resolved through its existing parents) and refused
  with ``550`` unless it lies inside the root's real path.  A link that stays inside
  the root works as usual.  A listing shows a link that leads out by its name only,
  as a link, without its target's type, size or times.  The check runs when the
  command arrives: someone with a shell on the machine who swaps a directory for a
  link between the check and the open is not what it guards against.
* **Logins** are the named ``users`` by password; anonymous access only with
  ``anonymous=True`` (user ``anonymous`` or ``ftp``), and then read-only.  USER
  answers ``331`` for every other name, known or not, so the replies never tell
  which names exist.  Every password goes through a
  :class:`~asyncnet.servers.LoginThrottle` (one per server unless ``login_throttle``
  shares one): a peer's attempts are checked one at a time with a doubling delay
  after each failure, however many connections it opens, and a peer that queues
  more attempts than ``max_delay`` covers is locked out: ``421`` and disconnected.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Self

import aioftp
from aioftp.common import Connection

from .._lifecycle import Endpoint
from ..errors import ConfigurationError
from ..servers import LoginThrottle

__all__ = ["FTPServer"]

ANONYMOUS_NAMES = frozenset({"anonymous", "ftp"})
"""The login names of anonymous FTP (RFC 1635), when ``anonymous=True``."""

_Response = aioftp.AbstractUserManager.GetUserResponse
_Handler = Callable[[Connection, Any], Awaitable[bool]]


class _Refused(Exception):
    """A command's path may not be used; ``code`` and ``text`` are the reply."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


def _resolved(path: Path) -> Path:
    """``path`` with every symlink on disk followed (non-existing tail kept as is)."""
    try:
        return Path(os.path.realpath(path))
    except ValueError as exc:  # NUL in the name: the OS cannot look it up
        raise _Refused("501", "path contains a NUL byte") from exc


def _leads_out(connection: Connection, path: Path) -> bool:
    """True if ``path`` resolves outside the logged-in user's (resolved) root."""
    return not _resolved(path).is_relative_to(connection.user.base_path)


class _Accounts(aioftp.AbstractUserManager):
    """Named users checked by password; a read-only anonymous user when enabled.

    USER gets "331 password required" for any name that is not an anonymous one,
    known or not: an unknown name then fails at PASS exactly like a wrong password
    (and through the same throttle), so names cannot be probed one USER at a time.
    """

    def __init__(
        self, named: Mapping[str, aioftp.User], anonymous: aioftp.User | None, nobody: aioftp.User
    ) -> None:
        super().__init__()
        self._named = dict(named)
        self._anonymous = anonymous
        self._nobody = nobody

    async def get_user(self, login: str) -> tuple[Any, aioftp.User | None, str]:
        user = self._named.get(login)
        if user is None and self._anonymous is not None and login.lower() in ANONYMOUS_NAMES:
            return _Response.OK, self._anonymous, "anonymous login (read-only)"
        return _Response.PASSWORD_REQUIRED, user or self._nobody, "password required"

    async def authenticate(self, user: aioftp.User, password: str) -> bool:
        if user is self._nobody or user.password is None:
            return False
        return hmac.compare_digest(user.password.encode(), password.encode())


class _Server(aioftp.Server):
    def __init__(
        self, users: aioftp.AbstractUserManager, *, login_throttle: LoginThrottle, **options: Any
    ) -> None:
        super().__init__(users, **options)
        self.login_throttle = login_throttle
        # Paths are checked in get_paths, which every path command calls before it
        # touches the disk; the refusal becomes the command's reply here.
        self.commands_mapping = {
            verb: self._replying_to_refusals(handler)
            for verb, handler in self.commands_mapping.items()
        }

    @staticmethod
    def _replying_to_refusals(handler: _Handler) -> _Handler:
        async def command(connection: Connection, rest: Any) -> bool:
            try:
                return await handler(connection, rest)
            except _Refused as refused:
                connection.response(refused.code, refused.text)
                return True

        return command

    @staticmethod
    def get_paths(connection: Connection, path: str | PurePosixPath) -> tuple[Path, PurePosixPath]:
        """aioftp's (real, virtual) paths, refused if the real one resolves out of the root."""
        real_path, virtual_path = aioftp.Server.get_paths(connection, path)
        if _leads_out(connection, real_path):
            raise _Refused("550", "permission denied: the path leads outside the served directory")
        return real_path, virtual_path

    async def build_list_string(self, connection: Connection, path: PurePosixPath) -> str:
        if not _leads_out(connection, Path(path)):
            return await super().build_list_string(connection, path)
        fields = ("lrwxrwxrwx", "1", "none", "none", "0", self._link_mtime(path), path.name)
        return " ".join(fields)

    async def build_mlsx_string(self, connection: Connection, path: Path) -> str:
        if not _leads_out(connection, path):
            return await super().build_mlsx_string(connection, path)
        return f"Type=OS.unix=slink; {path.name}"

    def _link_mtime(self, path: PurePosixPath) -> str:
        try:
            mtime = os.lstat(path).st_mtime
        except OSError:  # gone since the directory was read
            mtime = 0.0
        return self.build_list_mtime(mtime)

    async def pass_(self, connection: Connection, rest: str) -> bool:
        """PASS through the login throttle: one check at a time per peer host."""
        if not connection.future.user.done():
            connection.response("503", "bad sequence of commands (send USER first)")
            return True
        if connection.future.logged.done():
            connection.response("503", "already logged in")
            return True
        async with self.login_throttle.attempt(connection.client_host) as attempt:
            if not attempt.admitted:
                # 421 rather than 530: the password was not even checked, and 4xx
                # tells the client this is temporary; the connection is closed so a
                # locked-out peer holds no session open.
                connection.response("421", "too many failed logins; try again later")
                return False
            if await self.user_manager.authenticate(connection.user, rest):
                attempt.succeeded()
                connection.logged = True
                code, info = "230", "normal login"
            else:
                attempt.failed()
                code, info = "530", "wrong user name or password"
        connection.response(code, info)  # after the penalty delay, not before
        return True

    async def dispatcher(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """aioftp's session loop, ending quietly when it is cancelled.

        aioftp re-raises a worker's CancelledError from its session task; on Python
        3.11 asyncio's start_server callback then calls ``task.exception()`` on the
        cancelled task and the loop logs "Exception in callback" for a normal close.
        """
        try:
            await super().dispatcher(reader, writer)
        except asyncio.CancelledError:
            writer.close()


class FTPServer(Endpoint):
    """An aioftp server over ``root``: the given users, and anonymous only if asked.

    ``users`` maps names to passwords (``writable`` says whether they may change
    files); ``anonymous=True`` adds read-only anonymous access.  ``login_throttle``
    is a :class:`~asyncnet.servers.LoginThrottle` to share (a new one by default,
    ``server.login_throttle``).  Other keyword arguments go to ``aioftp.Server``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        host: str | None = "127.0.0.1",
        port: int = 0,
        all_interfaces: bool = False,
        users: Mapping[str, str] | None = None,
        anonymous: bool = False,
        writable: bool = True,
        login_throttle: LoginThrottle | None = None,
        **aioftp_options: Any,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ConfigurationError(f"root: {self.root} is not a directory")
        if host is None and not all_interfaces:
            raise ConfigurationError("host=None listens everywhere: pass all_interfaces=True")
        if not users and not anonymous:
            raise ConfigurationError(
                "FTPServer: no users: pass users={name: password}, or anonymous=True "
                "for read-only access without a password"
            )
        self.host = None if all_interfaces else host
        self.port = port
        self.login_throttle = (
            LoginThrottle(service="ftp") if login_throttle is None else login_throttle
        )
        real_root = Path(os.path.realpath(self.root))

        def account(name: str | None, password: str | None, writable: bool) -> aioftp.User:
            permission = aioftp.Permission("/", readable=True, writable=writable)
            return aioftp.User(name, password, base_path=real_root, permissions=[permission])

        accounts = _Accounts(
            {name: account(name, password, writable) for name, password in (users or {}).items()},
            account(None, None, False) if anonymous else None,
            nobody=account(None, None, False),
        )
        self._server = _Server(accounts, login_throttle=self.login_throttle, **aioftp_options)
        self._started = False
        self._closing: asyncio.Task[None] | None = None

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the server listens on (the real port when started on 0)."""
        sock = self._server.server.sockets[0]
        host, port = sock.getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> Self:
        """Bind and start accepting."""
        await self._server.start(self.host, self.port)
        self._started = True
        return self

    async def serve_forever(self) -> None:
        """Start if needed and serve until cancelled or stopped."""
        if not self._started:
            await self.start()
        await self._server.serve_forever()

    def close(self, grace: float | None = None) -> None:
        """Stop accepting and begin closing every session (see :meth:`wait_closed`).

        Sessions are cut at once, whatever ``grace`` says: FTP has no graceful goodbye.
        """
        if self._started and self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._server.close())

    async def wait_closed(self) -> None:
        """Wait until the listener and every session are closed."""
        if self._closing is not None:
            await self._closing
