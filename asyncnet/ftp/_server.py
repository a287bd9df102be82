"""aioftp's server on loopback with asyncnet's lifecycle, for demos and tests.

::

    async with FTPServer(root, users={"guest": secret}) as server:
        print("ftp on", server.address)

It binds 127.0.0.1 (port 0: any free port, read back from ``server.address``)
unless ``all_interfaces=True``.  It is a convenience for local use, not a
hardened public FTP server, but what it serves stays what it was given:

* **The root is a boundary, symlinks included.**  aioftp maps a client's path under
  the root lexically and then follows whatever symlinks it meets on disk; here the
  path of every command (RETR, STOR, APPE, LIST, NLST, MLSD, MLST, SIZE, MDTM, CWD,
  CDUP, DELE, RMD, MKD, RNFR, RNTO) is resolved first (:func:`os.path.realpath`:
  links followed, and a path that does not exist yet resolved through its existing
  parents) and refused with ``550`` unless it lies inside the root's real path.  A
  link that stays inside the root works as usual.  A listing shows a link that
  leads out by its name only, as a link, without its target's type, size or times.
  The check runs when the command arrives: someone with a shell on the machine who
  swaps a directory for a link between the check and the open is not what it
  guards against.
* **Logins** are the named ``users`` by password; anonymous access only with
  ``anonymous=True`` (user ``anonymous`` or ``ftp``), and then read-only.  USER
  answers ``331`` for every other name, known or not, so the replies never tell
  which names exist.  Every password goes through a
  :class:`~asyncnet.servers.LoginThrottle` (one per server unless ``login_throttle``
  shares one): a peer's attempts are checked one at a time with a doubling delay
  after each failure, however many connections it opens, and a peer that queues
  more attempts than ``max_delay`` covers is locked out: ``421`` and disconnected.
* **What real clients ask for**: FEAT, SIZE, MDTM, NLST, MLST/MLSD, OPTS, NOOP,
  passive (PASV, EPSV) and active (PORT, EPRT) data connections; an active one goes
  only to the client's own address (no FTP bounce), a passive one is accepted only
  from it; explicit FTPS when given a certificate.  Sessions run through
  :mod:`._server_session` (a hang-up is one debug line), data connections through
  :mod:`._server_data`, AUTH TLS through :mod:`._server_tls`.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Self

import aioftp
from aioftp.common import END_OF_LINE, Connection

from .._lifecycle import Endpoint
from ..errors import ConfigurationError
from ..servers import LoginThrottle
from ._server_data import logged_in
from ._server_tls import ExplicitTLS

__all__ = ["FTPServer"]

ANONYMOUS_NAMES = frozenset({"anonymous", "ftp"})
"""The login names of anonymous FTP (RFC 1635), when ``anonymous=True``."""

_Response = aioftp.AbstractUserManager.GetUserResponse
_Handler = Callable[[Connection, Any], Awaitable[bool]]

MLST_FACTS = ("type", "size", "modify", "create")
"""The MLST/MLSD facts served (RFC 3659), in the order FEAT names them."""

_LS_OPTIONS = frozenset({"-a", "-l", "-al", "-la", "-1", "-la1"})
"""``ls`` options some clients put before LIST/NLST's path; every listing shows them all."""

DEFAULT_IDLE_TIMEOUT = 300.0
"""Seconds a session may send no command while no transfer runs (as vsftpd and pyftpdlib)."""

DEFAULT_SOCKET_TIMEOUT = 60.0
"""Seconds one read or write on a data connection (or one reply's write) may take."""


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


class _Server(ExplicitTLS):
    def __init__(
        self, users: aioftp.AbstractUserManager, *, login_throttle: LoginThrottle, **options: Any
    ) -> None:
        super().__init__(users, **options)
        self.login_throttle = login_throttle
        self.commands_mapping.update(
            allo=self.allo,
            feat=self.feat,
            help=self.help,
            mdtm=self.mdtm,
            mode=self.mode,
            nlst=self._without_ls_options(self.nlst),
            noop=self.noop,
            opts=self.opts,
            size=self.size,
            stru=self.stru,
        )
        self.commands_mapping["list"] = self._without_ls_options(self.list)
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
        if _leads_out(connection, path):
            line = f"Type=OS.unix=slink; {path.name}"
        else:
            line = await super().build_mlsx_string(connection, path)
        if "mlst_facts" not in connection:
            return line
        # OPTS MLST chose the facts: keep those, in the order aioftp wrote them.
        facts, _, name = line.partition(" ")
        kept = [
            f
            for f in facts.split(";")
            if f and f.partition("=")[0].lower() in connection.mlst_facts
        ]
        return "".join(f + ";" for f in kept) + " " + name

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

    @staticmethod
    def _without_ls_options(handler: _Handler) -> _Handler:
        async def command(connection: Connection, rest: Any) -> bool:
            words = str(rest).split(" ", 1)
            if words[0].lower() in _LS_OPTIONS:
                rest = words[1] if len(words) > 1 else ""
            return await handler(connection, rest)

        return command

    def features(self) -> list[str]:
        """The FEAT lines (RFC 2389): the extensions this server really implements."""
        facts = "".join(f"{fact}*;" for fact in MLST_FACTS)
        return [
            "EPRT",
            "EPSV",
            "MDTM",
            f"MLST {facts}",
            "PASV",
            "REST STREAM",
            "SIZE",
            "TVFS",
            "UTF8",
            *self.tls_features(),
        ]

    async def feat(self, connection: Connection, rest: str) -> bool:
        """FEAT: the extensions, one per line (allowed before login)."""
        connection.response("211", ["Features:", *self.features(), "End"], True)
        return True

    async def help(self, connection: Connection, rest: str) -> bool:
        """HELP: the commands this server knows."""
        verbs = sorted(verb.upper() for verb in self.commands_mapping)
        rows = [
            " ".join(f"{verb:<5}" for verb in verbs[i : i + 10]) for i in range(0, len(verbs), 10)
        ]
        connection.response(
            "214", ["The following commands are recognized:", *rows, "Help OK"], True
        )
        return True

    async def noop(self, connection: Connection, rest: str) -> bool:
        """NOOP: 200."""
        connection.response("200", "NOOP ok")
        return True

    async def allo(self, connection: Connection, rest: str) -> bool:
        """ALLO: nothing to reserve ahead (202, as RFC 959 allows)."""
        if logged_in(connection):
            connection.response("202", "no storage allocation necessary")
        return True

    async def stru(self, connection: Connection, rest: str) -> bool:
        """STRU F only (RFC 1123's minimum)."""
        if not logged_in(connection):
            return True
        ok = rest.strip().upper() == "F"
        connection.response("200" if ok else "504", "structure F" if ok else "only STRU F")
        return True

    async def mode(self, connection: Connection, rest: str) -> bool:
        """MODE S only (RFC 1123's minimum)."""
        if not logged_in(connection):
            return True
        ok = rest.strip().upper() == "S"
        connection.response("200" if ok else "504", "mode S" if ok else "only MODE S")
        return True

    async def opts(self, connection: Connection, rest: str) -> bool:
        """OPTS UTF8 ON (always on) and OPTS MLST (which facts MLST/MLSD show)."""
        name, _, value = rest.strip().partition(" ")
        if name.upper() == "UTF8":
            if value.strip().upper() in ("", "ON"):
                connection.response("200", "UTF-8 is always on")
            else:
                connection.response("504", "UTF-8 cannot be turned off")
        elif name.upper() == "MLST":
            wanted = {fact.lower() for fact in value.split(";") if fact}
            chosen = tuple(fact for fact in MLST_FACTS if fact in wanted)
            connection.mlst_facts = chosen
            connection.response("200", f"MLST OPTS {''.join(f + ';' for f in chosen)}")
        else:
            connection.response("501", "OPTS: only UTF8 and MLST")
        return True

    async def readable(self, connection: Connection, rest: str, *, file: bool) -> Path | None:
        """The real path of an existing, readable ``rest`` (a file if ``file``).

        None, having replied (``530``, or ``550`` as aioftp's own commands do), if not.
        """
        if not logged_in(connection):
            return None
        real_path, virtual_path = self.get_paths(connection, rest)
        if not await connection.path_io.exists(real_path):
            connection.response("550", "path does not exist")
        elif file and not await connection.path_io.is_file(real_path):
            connection.response("550", "path is not a file")
        elif not (await connection.user.get_permissions(virtual_path)).readable:
            connection.response("550", "permission denied")
        else:
            return real_path
        return None

    async def size(self, connection: Connection, rest: str) -> bool:
        """SIZE (RFC 3659): the bytes RETR sends, which are the file's (no TYPE A conversion)."""
        real_path = await self.readable(connection, rest, file=True)
        if real_path is not None:
            stats = await connection.path_io.stat(real_path)
            connection.response("213", str(stats.st_size))
        return True

    async def mdtm(self, connection: Connection, rest: str) -> bool:
        """MDTM (RFC 3659): the modification time in UTC, as ``YYYYMMDDHHMMSS``."""
        real_path = await self.readable(connection, rest, file=False)
        if real_path is not None:
            stats = await connection.path_io.stat(real_path)
            connection.response("213", time.strftime("%Y%m%d%H%M%S", time.gmtime(stats.st_mtime)))
        return True

    async def nlst(self, connection: Connection, rest: str) -> bool:
        """NLST: the names in a directory (or a file's own name), one per line."""
        real_path = await self.readable(connection, rest, file=False)
        if real_path is None:
            return True
        if not connection.future.passive_server.done():
            connection.response("503", "no data connection: send PASV, EPSV, PORT or EPRT first")
            return True

        async def send_names() -> None:
            stream = await self.take_data_connection(connection)
            if stream is None:
                return
            try:
                async with stream:
                    if await connection.path_io.is_dir(real_path):
                        async for path in connection.path_io.list(real_path):
                            await stream.write((path.name + END_OF_LINE).encode(self.encoding))
                    else:
                        await stream.write((real_path.name + END_OF_LINE).encode(self.encoding))
            except asyncio.CancelledError:  # ABOR, as aioftp's own transfers answer it
                connection.response("426", "transfer aborted")
                connection.response("226", "abort successful")
                return
            connection.response("226", "name list transfer done")

        connection.extra_workers.add(asyncio.create_task(send_names()))
        connection.response("150", "name list transfer started")
        return True


def _no_session_tickets(name: str, context: object) -> None:
    """Make ``context`` send no TLS 1.3 session tickets; refuse a client-side one.

    OpenSSL sends tickets right after the handshake.  On an upload's data connection
    the client never reads them, and a client that closes with them unread (curl
    does, as soon as its upload is sent) makes its kernel answer with a reset, which
    discards whatever of the upload the server had not read yet: the file was cut
    short and the transfer ended in 426, in up to 1 upload in 6 on loopback.  Without
    tickets a client resumes no session (none of the clients tested asks to).
    """
    if not isinstance(context, ssl.SSLContext):
        raise ConfigurationError(f"FTPServer: {name}= wants an ssl.SSLContext")
    try:
        context.num_tickets = 0
    except ValueError as exc:  # "SSLContext is not a server context"
        raise ConfigurationError(
            f"FTPServer: {name}= wants a server-side context: "
            "ssl.create_default_context(ssl.Purpose.CLIENT_AUTH) with load_cert_chain()"
        ) from exc


class FTPServer(Endpoint):
    """An aioftp server over ``root``: the given users, and anonymous only if asked.

    ``users`` maps names to passwords (``writable`` says whether they may change
    files); ``anonymous=True`` adds read-only anonymous access.  ``login_throttle``
    is a :class:`~asyncnet.servers.LoginThrottle` to share (a new one by default,
    ``server.login_throttle``).  ``tls`` (a server-side :class:`ssl.SSLContext`)
    offers explicit FTPS (AUTH TLS, PROT P); with ``tls_required`` (the default)
    named users must log in over TLS and protect their data.  The server sets the
    context's ``num_tickets`` to 0: a TLS 1.3 session ticket left unread on an
    upload's data connection turns the client's close into a reset that cuts the
    upload short.  ``idle_timeout``
    (300 s), ``socket_timeout`` (60 s) and ``max_line`` (4096 bytes, one command
    line) bound what a client can hold; other keyword arguments go to
    ``aioftp.Server`` (its ``ssl=`` is implicit FTPS: TLS from the first byte).
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
        tls: ssl.SSLContext | None = None,
        tls_required: bool = True,
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
        if tls is not None and aioftp_options.get("ssl") is not None:
            raise ConfigurationError(
                "FTPServer: pass tls= (explicit FTPS, AUTH TLS) or ssl= (implicit FTPS), not both"
            )
        for name, context in (("tls", tls), ("ssl", aioftp_options.get("ssl"))):
            if context is not None:
                _no_session_tickets(name, context)
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
        aioftp_options.setdefault("idle_timeout", DEFAULT_IDLE_TIMEOUT)
        aioftp_options.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
        self._server = _Server(
            accounts,
            login_throttle=self.login_throttle,
            tls=tls,
            tls_required=tls_required,
            anonymous_names=ANONYMOUS_NAMES if anonymous else frozenset(),
            **aioftp_options,
        )
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
