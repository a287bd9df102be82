"""Clients: line, frame and datagram request clients, each with timeouts."""

from .datagram import DatagramClient
from .framed import FramedClient
from .lines import LineClient

__all__ = ["DatagramClient", "FramedClient", "LineClient"]
