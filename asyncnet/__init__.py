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

import importlib
from typing import TYPE_CHECKING, Any

# The errors are plain classes with no dependencies, so they load at once: a program
# can ``except asyncnet.AsyncNetError`` without paying for the servers or asyncio.
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

if TYPE_CHECKING:
    # Type checkers and the API reference see every re-exported name as a plain
    # import; at run time the names below load on first use (``__getattr__``).
    from ._factories import tcp_server, udp_server, unix_server
    from ._lifecycle import Endpoint
    from ._runner import Servable, catch_signals, configure_logging, run, run_servers
    from ._workers import run_workers
    from .clients import DatagramClient, FramedClient, LineClient
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

# Where each lazily loaded name lives.  ``import asyncnet`` then costs the errors
# alone, not asyncio and the servers: a command's ``--help``, or a program that only
# needs ``asyncnet.mail``, starts without them.  Must list exactly the names of the
# ``TYPE_CHECKING`` block above (a test compares the two with ``__all__``).
_LAZY: dict[str, str] = {
    "tcp_server": "._factories",
    "udp_server": "._factories",
    "unix_server": "._factories",
    "Endpoint": "._lifecycle",
    "Servable": "._runner",
    "catch_signals": "._runner",
    "configure_logging": "._runner",
    "run": "._runner",
    "run_servers": "._runner",
    "run_workers": "._workers",
    "DatagramClient": ".clients",
    "FramedClient": ".clients",
    "LineClient": ".clients",
    "BaseHandler": ".servers",
    "CommandHandler": ".servers",
    "DatagramHandler": ".servers",
    "DatagramServer": ".servers",
    "FramedHandler": ".servers",
    "LineHandler": ".servers",
    "ServerEvents": ".servers",
    "ServerStats": ".servers",
    "StreamHandler": ".servers",
    "StreamServer": ".servers",
}

if not TYPE_CHECKING:
    # Hidden from type checkers so that a misspelt ``asyncnet.Name`` stays an error
    # there instead of silently typing as the return value of ``__getattr__``.

    def __getattr__(name: str) -> Any:
        """Load a re-exported name on first use (PEP 562), then keep it as a global."""
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    """The module's globals plus the names not loaded yet, as ``dir()`` shows them."""
    return sorted(set(globals()) | set(__all__))
