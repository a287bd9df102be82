"""asyncnet: the demos of "Network programming in Python" as an asyncio framework.

Write a handler class, hand it to a server, run the server inside your own event
loop::

    from asyncnet import LineHandler, tcp_server

    class Upper(LineHandler):
        def handle_line(self, line: str) -> str:
            return line.upper()

    async with tcp_server(Upper, port=0) as server:
        print("upper on", server.address)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .clients import DatagramClient, FramedClient, LineClient
from .errors import (
    AsyncNetError,
    ConfigurationError,
    FrameTimeout,
    FrameTooLarge,
    IncompleteFrame,
    LineTooLong,
    LocalProtocolError,
    NetworkError,
    NoResponse,
    OperationTimeout,
    PeerProtocolError,
    ProtocolError,
    WriteTimeout,
)
from .runner import run, run_servers
from .servers import (
    BaseHandler,
    CommandHandler,
    DatagramHandler,
    DatagramServer,
    FramedHandler,
    LineHandler,
    ServerStats,
    StreamHandler,
    StreamServer,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncNetError",
    "BaseHandler",
    "CommandHandler",
    "ConfigurationError",
    "DatagramClient",
    "DatagramHandler",
    "DatagramServer",
    "FrameTimeout",
    "FrameTooLarge",
    "FramedClient",
    "FramedHandler",
    "IncompleteFrame",
    "LineClient",
    "LineHandler",
    "LineTooLong",
    "LocalProtocolError",
    "NetworkError",
    "NoResponse",
    "OperationTimeout",
    "PeerProtocolError",
    "ProtocolError",
    "ServerStats",
    "StreamHandler",
    "StreamServer",
    "WriteTimeout",
    "run",
    "run_servers",
    "tcp_server",
    "udp_server",
    "unix_server",
]


def tcp_server(handler: Callable[[], BaseHandler], **options: Any) -> StreamServer:
    """A TCP :class:`StreamServer` for ``handler`` (127.0.0.1, port 0 unless given)."""
    return StreamServer(handler, **options)


def unix_server(handler: Callable[[], BaseHandler], path: str, **options: Any) -> StreamServer:
    """A :class:`StreamServer` on the Unix domain socket ``path``."""
    return StreamServer(handler, path=path, **options)


def udp_server(
    handler: Callable[[], DatagramHandler] | DatagramHandler, **options: Any
) -> DatagramServer:
    """A UDP :class:`DatagramServer` for ``handler`` (127.0.0.1, port 0 unless given)."""
    return DatagramServer(handler, **options)
