"""What the stream clients share: connecting, the peer, timeouts, closing."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ssl as ssl_module
from collections.abc import AsyncIterator
from typing import Any, Final, Literal, Self, TypeAlias

from .._boundary import network_errors
from .._lifecycle import Endpoint
from ..errors import ConfigurationError, NetworkError, format_peer

__all__ = ["DEFAULT", "StreamClient", "Timeout", "open_stream"]


class _Default(enum.Enum):
    TIMEOUT = "the client's timeout"


DEFAULT: Final = _Default.TIMEOUT
Timeout: TypeAlias = float | Literal[_Default.TIMEOUT] | None
"""Seconds, ``None`` for no limit, or (the default) the client's ``timeout``."""


async def open_stream(
    host: str,
    port: int | None,
    *,
    path: str | None,
    ssl: ssl_module.SSLContext | None,
    server_hostname: str | None,
    timeout: float | None,
    limit: int = 64 * 1024,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Any]:
    """Connect to ``host:port`` or the Unix socket ``path`` within ``timeout``."""
    peer: Any = path if path is not None else (host, port)
    async with network_errors(peer, "connect", timeout):
        if path is not None:
            reader, writer = await asyncio.open_unix_connection(
                path, ssl=ssl, server_hostname=server_hostname, limit=limit
            )
        else:
            if port is None:
                raise ConfigurationError("connect() needs a port (or a Unix socket path)")
            reader, writer = await asyncio.open_connection(
                host, port, ssl=ssl, server_hostname=server_hostname, limit=limit
            )
    return reader, writer, peer


class StreamClient(Endpoint):
    """A stream connection with a default ``timeout`` per operation."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Any,
        *,
        timeout: float | None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.timeout = timeout

    @property
    def local_address(self) -> Any:
        """Our end of the connection (the ephemeral port the OS chose)."""
        return self.writer.get_extra_info("sockname")

    def _limit(self, timeout: Timeout) -> float | None:
        return self.timeout if timeout is DEFAULT else timeout

    @contextlib.asynccontextmanager
    async def deadline(self, seconds: float | None, phase: str = "session") -> AsyncIterator[None]:
        """Bound everything in the block by ``seconds`` in total (a whole-operation deadline).

        Per-operation timeouts still apply inside; whichever expires first wins.
        On expiry :class:`~asyncnet.errors.OperationTimeout` names the server and ``phase``.
        """
        async with network_errors(self.peer, phase, seconds):
            yield

    def _no_reply(self) -> NetworkError:
        """The error for a ``request()`` whose reply never came: the server closed."""
        return NetworkError(
            f"{format_peer(self.peer)} closed the connection instead of replying",
            self.peer,
            "request",
        )

    # -- lifecycle (the one every endpoint has) ------------------------------------

    async def start(self) -> Self:
        """Nothing to do: ``connect()`` returns a connected client; return self."""
        return self

    def close(self, grace: float | None = None) -> None:
        """Begin closing the connection (returns at once; ``grace`` is for :meth:`stop`)."""
        self.writer.close()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed (errors while closing are ignored)."""
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    async def stop(self, grace: float | None = None) -> None:
        """``close()`` then ``wait_closed()``, at most ``grace`` seconds (then abort)."""
        self.close()
        try:
            async with asyncio.timeout(grace):
                await self.wait_closed()
        except TimeoutError:
            transport = self.writer.transport
            transport.abort()
