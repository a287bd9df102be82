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

from ._factories import tcp_server, udp_server, unix_server
from ._lifecycle import Endpoint
from ._runner import Servable, catch_signals, configure_logging, run, run_servers
from ._workers import run_workers
from .clients import DatagramClient, FramedClient, LineClient
from .errors import (
    AddressInUse,
    AsyncNetError,
    BroadcastNotAllowed,
    ClientError,
    ConfigurationError,
    CreosoteError,
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
    ServerError,
    StateError,
    WriteTimeout,
)
from .servers import (
    BaseHandler,
    CommandHandler,
    DatagramHandler,
    DatagramServer,
    FramedHandler,
    LineHandler,
    ServerEvents,
    ServerStats,
    StreamHandler,
    StreamServer,
)

__version__ = "0.2.0"

__all__ = [
    "ClientError",
    "CreosoteError",
    "ServerError",
    "catch_signals",
    "configure_logging",
    "run_workers",
    "AddressInUse",
    "AsyncNetError",
    "BroadcastNotAllowed",
    "BaseHandler",
    "CommandHandler",
    "ConfigurationError",
    "DatagramClient",
    "DatagramHandler",
    "DatagramServer",
    "Endpoint",
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
    "StateError",
    "Servable",
    "ServerEvents",
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
