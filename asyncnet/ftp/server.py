"""aioftp's server on loopback with asyncnet's lifecycle, for demos and tests.

::

    async with FTPServer(root, users={"guest": secret}) as server:
        print("ftp on", server.address)

It binds 127.0.0.1 (port 0: any free port, read back from ``server.address``)
unless ``all_interfaces=True``.  It is a convenience for local use, not a
hardened public FTP server.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import aioftp

from ..errors import ConfigurationError
from ..lifecycle import Endpoint

__all__ = ["FTPServer"]


class _Server(aioftp.Server):
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
    """An aioftp server over ``root``: anonymous, or the given user names and passwords."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        host: str | None = "127.0.0.1",
        port: int = 0,
        all_interfaces: bool = False,
        users: Mapping[str, str] | None = None,
        writable: bool = True,
        **aioftp_options: Any,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ConfigurationError(f"root: {self.root} is not a directory")
        if host is None and not all_interfaces:
            raise ConfigurationError("host=None listens everywhere: pass all_interfaces=True")
        self.host = None if all_interfaces else host
        self.port = port
        permissions = [aioftp.Permission("/", readable=True, writable=writable)]
        if users:
            accounts = [
                aioftp.User(name, password, base_path=self.root, permissions=permissions)
                for name, password in users.items()
            ]
        else:
            accounts = [aioftp.User(base_path=self.root, permissions=permissions)]
        self._server = _Server(accounts, **aioftp_options)
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
