"""Clients: line, frame and datagram request clients, each with timeouts."""

from ..errors import ClientError
from ._console import stdin_lines
from ._datagram import DatagramClient
from ._framed import FramedClient
from ._interactive import datagram_session, line_session
from ._lines import LineClient
from ._stream import open_stream

__all__ = [
    "ClientError",
    "datagram_session",
    "line_session",
    "open_stream",
    "stdin_lines",
    "DatagramClient",
    "FramedClient",
    "LineClient",
]
