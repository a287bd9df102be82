"""Stream (TCP/Unix) and datagram (UDP) servers, and the handler classes they run."""

from .commands import CommandHandler
from .datagram import DatagramServer
from .events import ServerEvents
from .framed import FramedHandler
from .handlers import BaseHandler, DatagramHandler, LineHandler, StreamHandler
from .logins import LoginAttempt, LoginThrottle
from .stats import ServerStats
from .stream import StreamServer

__all__ = [
    "BaseHandler",
    "CommandHandler",
    "DatagramHandler",
    "DatagramServer",
    "FramedHandler",
    "LineHandler",
    "LoginAttempt",
    "LoginThrottle",
    "ServerEvents",
    "ServerStats",
    "StreamHandler",
    "StreamServer",
]
