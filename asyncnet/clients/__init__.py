"""Clients: line and datagram request clients (later: POP3, SMTP, FTP, HTTP)."""

from .datagram import DatagramClient
from .lines import LineClient

__all__ = ["DatagramClient", "LineClient"]
