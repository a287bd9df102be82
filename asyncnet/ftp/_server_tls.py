"""Explicit FTPS on the embedded FTP server (RFC 4217): AUTH TLS, PBSZ and PROT.

Given a server-side :class:`ssl.SSLContext` (a certificate and its key), a session
upgrades its control connection with ``AUTH TLS`` and protects its data connections
with ``PROT P``.  The upgrade is made between two commands: the ``234`` reply goes
out in the clear, then whatever the client sent after ``AUTH TLS`` but before the
handshake is dropped unread (otherwise a man in the middle could append commands in
the clear that would run as if they had come over TLS, the STARTTLS injection of
CVE-2011-0411), and only then does the handshake start.

With ``tls_required`` (the default when a context is given) a named user must log
in over TLS (``USER`` in the clear is ``530``: the password would follow in the
clear), and a TLS session must protect its data (a data connection without ``PROT
P`` is ``521``).  Anonymous users, whose files are public anyway, may stay in the
clear.
"""

from __future__ import annotations

import ssl
from pathlib import PurePosixPath
from typing import Any

from aioftp.common import Connection

from .._compat import discard_stream_buffer
from ._server_data import DataConnections
from ._server_session import SessionOver, logger

__all__ = ["ExplicitTLS"]

_HANDSHAKE_TIMEOUT = 30.0
"""Seconds the TLS handshake after AUTH TLS may take."""


def tls_active(connection: Connection) -> bool:
    """True once the session's control connection runs over TLS."""
    return "tls" in connection


class ExplicitTLS(DataConnections):
    """AUTH TLS, PBSZ and PROT when ``tls`` is a server-side SSLContext.

    ``anonymous_names`` are the login names that ``tls_required`` leaves in the clear
    (empty when the server has no anonymous access).
    """

    def __init__(
        self,
        *args: Any,
        tls: ssl.SSLContext | None = None,
        tls_required: bool = True,
        anonymous_names: frozenset[str] = frozenset(),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.tls = tls
        self.tls_required = tls is not None and tls_required
        self.anonymous_names = anonymous_names
        self.commands_mapping.update(auth=self.auth, ccc=self.ccc)

    def tls_features(self) -> list[str]:
        """FEAT lines for explicit FTPS (none without a certificate)."""
        return ["AUTH TLS", "PBSZ", "PROT"] if self.tls is not None else []

    async def auth(self, connection: Connection, rest: str) -> bool:
        """AUTH TLS (or its old name AUTH SSL): ``234``, then the handshake."""
        if self.tls is None:
            connection.response("502", "AUTH not available: this server has no certificate")
            return True
        if rest.strip().upper() not in ("TLS", "TLS-C", "SSL"):
            connection.response("504", "AUTH TLS only")
            return True
        if tls_active(connection):
            connection.response("503", "already over TLS")
            return True
        stream = connection.command_connection
        connection.response("234", "AUTH TLS successful: start the handshake")
        try:
            await stream.writer.drain()
            # Bytes that came after AUTH TLS, in the clear, are not the client's
            # first words over TLS: drop them unread.
            discard_stream_buffer(stream.reader)
            await stream.writer.start_tls(self.tls, ssl_handshake_timeout=_HANDSHAKE_TIMEOUT)
        except (OSError, TimeoutError, RuntimeError) as exc:  # ssl.SSLError is an OSError
            raise SessionOver(f"failed the TLS handshake ({type(exc).__name__})") from exc
        connection.tls = True
        # A new login over TLS: what was said in the clear before does not count.
        if connection.future.user.done():
            await self.user_manager.notify_logout(connection.user)
        del connection.user
        del connection.logged
        logger.debug("ftp %s: control connection now over TLS", connection.client_host)
        return True

    async def ccc(self, connection: Connection, rest: str) -> bool:
        """CCC (back to the clear) is refused: what TLS protects stays protected."""
        connection.response("534", "CCC refused: the control connection stays over TLS")
        return True

    async def pbsz(self, connection: Connection, rest: str | PurePosixPath) -> bool:
        """PBSZ 0 (RFC 4217: the only size TLS needs), after AUTH TLS."""
        if not tls_active(connection):
            connection.response("503", "PBSZ needs AUTH TLS first")
        else:
            connection.response("200", "PBSZ=0")
        return True

    async def prot(self, connection: Connection, rest: str | PurePosixPath) -> bool:
        """PROT P (data over TLS) or C (in the clear, unless TLS is required)."""
        level = str(rest).strip().upper()
        if not tls_active(connection):
            connection.response("503", "PROT needs AUTH TLS first")
        elif level == "P":
            connection.protected = True
            connection.response("200", "PROT P: data connections over TLS")
        elif level == "C" and self.tls_required:
            connection.response("534", "PROT C refused: data must be protected (PROT P)")
        elif level == "C":
            if "protected" in connection:
                del connection.protected
            connection.response("200", "PROT C: data connections in the clear")
        else:
            connection.response("504", "PROT P or C only")
        return True

    async def user(self, connection: Connection, rest: str) -> bool:
        """USER, refused in the clear for a named user when TLS is required."""
        name = rest.strip().lower()
        if self.tls_required and not tls_active(connection) and name not in self.anonymous_names:
            connection.response("530", "log in over TLS: send AUTH TLS first")
            return True
        return await super().user(connection, rest)

    def data_tls(self, connection: Connection) -> ssl.SSLContext | None:
        """The session's context after PROT P; else the server-wide (implicit) one."""
        if "protected" in connection and self.tls is not None:
            return self.tls
        return super().data_tls(connection)

    def data_refused(self, connection: Connection) -> bool:
        """A TLS session that must protect its data but has not sent PROT P: ``521``."""
        if self.tls_required and tls_active(connection) and "protected" not in connection:
            connection.response("521", "data connections must be protected: send PROT P")
            return True
        return super().data_refused(connection)
