"""Counters kept by every server, readable at any time as ``server.stats``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["ServerStats"]


@dataclass(slots=True)
class ServerStats:
    """Plain integer counters; the server only ever adds to them.

    Stream servers use the ``connections_*`` fields, datagram servers the
    ``datagrams_*`` ones; ``bytes_*`` and ``handler_errors`` apply to both.
    """

    connections_total: int = 0
    """Connections accepted and handed to a handler."""
    connections_active: int = 0
    """Connections open right now."""
    connections_refused: int = 0
    """Connections closed at once because ``max_connections`` was reached or the
    server was shutting down."""
    connections_timed_out: int = 0
    """Connections closed by the idle, line or write timeout."""
    protocol_errors: int = 0
    """Connections closed because the peer broke the protocol (over-long line...)."""
    accept_errors: int = 0
    """Failed ``accept()`` calls (out of file descriptors...); asyncio retries them."""
    connections_at_fd_limit: int = 0
    """Connections accepted on one of the process's last file descriptors: the next
    ones will fail (uvloop drops those silently, so this is its only trace)."""
    handler_errors: int = 0
    """Exceptions raised by handler code (logged with their traceback)."""
    bytes_in: int = 0
    bytes_out: int = 0
    datagrams_in: int = 0
    datagrams_out: int = 0
    datagrams_dropped: int = 0
    """Datagrams not handled because too many handler calls were already pending."""
    send_errors: int = 0
    """Errors the OS reported for datagrams we sent (ICMP port unreachable...)."""
    datagrams_reflected: int = 0
    """Datagrams dropped unanswered because answering could start or keep up a
    reflection loop: from a refused address, or a repeat beyond its source's reply
    budget (see :mod:`asyncnet.servers._reflection`)."""

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a plain dict (for logs, JSON, metrics)."""
        return asdict(self)
