"""Stream (TCP/Unix) and datagram (UDP) servers, and the handler classes they run."""

from ..errors import ServerError
from ._base import ServerBase
from ._commands import CommandHandler, Reply
from ._connection.stream import ConnectionReader, ConnectionWriter
from ._datagram import DatagramServer
from ._events import ServerEvents
from ._framed import FramedHandler
from ._handlers import BaseHandler, DatagramHandler, LineHandler, StreamHandler
from ._health import HealthServer
from ._inherit import named_sockets_from_systemd, sockets_from_systemd
from ._logins import LoginAttempt, LoginThrottle
from ._options import DatagramOptions, ListenOptions, StreamOptions, TCPOptions
from ._reflection import ReplyBudget, SourceFilter
from ._stats import ServerStats
from ._stream import StreamServer

__all__ = [
    "ServerError",
    "HealthServer",
    "Reply",
    "ReplyBudget",
    "ServerBase",
    "SourceFilter",
    "named_sockets_from_systemd",
    "sockets_from_systemd",
    "BaseHandler",
    "CommandHandler",
    "ConnectionReader",
    "ConnectionWriter",
    "DatagramHandler",
    "DatagramOptions",
    "DatagramServer",
    "FramedHandler",
    "ListenOptions",
    "LineHandler",
    "LoginAttempt",
    "LoginThrottle",
    "ServerEvents",
    "ServerStats",
    "StreamHandler",
    "StreamOptions",
    "StreamServer",
    "TCPOptions",
]
