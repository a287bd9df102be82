"""One exception tree for the whole package.

Every asyncnet error derives from :class:`AsyncNetError`.  Protocol errors split
into what the *peer* did wrong (:class:`PeerProtocolError`: an over-long line, a
frame over the limit, a truncated frame) and what *we* were asked to do wrong
(:class:`LocalProtocolError`).  Network failures are also :class:`OSError` and
timeouts are also :class:`TimeoutError`, so callers' existing ``except`` clauses
keep working.  Each error that concerns a peer names it, and the phase it was in,
in its message.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AsyncNetError",
    "ConfigurationError",
    "FrameTimeout",
    "FrameTooLarge",
    "IncompleteFrame",
    "LineTooLong",
    "LocalProtocolError",
    "NetworkError",
    "NoResponse",
    "OperationTimeout",
    "PeerProtocolError",
    "ProtocolError",
    "WriteTimeout",
    "format_peer",
]


def format_peer(peer: Any) -> str:
    """Render a socket address (tuple, path or None) the way people write it."""
    if peer is None or peer == "":
        return "<unknown peer>"
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        if ":" in str(host):
            return f"[{host}]:{port}"
        return f"{host}:{port}"
    if isinstance(peer, bytes):
        peer = peer.decode(errors="replace")
    return str(peer)


class AsyncNetError(Exception):
    """Root of every exception asyncnet raises on purpose."""


class ConfigurationError(AsyncNetError, ValueError):
    """An option or argument that asyncnet refuses before touching the network."""


class ProtocolError(AsyncNetError):
    """Bytes on the wire broke the rules of the protocol."""


class PeerProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""


class LocalProtocolError(ProtocolError, ValueError):
    """We were asked to send something the protocol does not allow."""


class LineTooLong(PeerProtocolError):
    """No delimiter arrived within the line length limit."""

    def __init__(self, limit: int, received: int, peer: Any = None) -> None:
        self.limit = limit
        self.received = received
        self.peer = peer
        where = f" from {format_peer(peer)}" if peer is not None else ""
        super().__init__(
            f"line too long{where}: {received} bytes without a delimiter (limit {limit})"
        )


class FrameTooLarge(PeerProtocolError):
    """A frame (or a length prefix announcing one) exceeds the frame size limit."""

    def __init__(self, size: int, limit: int, peer: Any = None) -> None:
        self.size = size
        self.limit = limit
        self.peer = peer
        where = f" from {format_peer(peer)}" if peer is not None else ""
        super().__init__(f"frame too large{where}: {size} bytes (limit {limit})")


class IncompleteFrame(PeerProtocolError):
    """The stream ended in the middle of a frame."""

    def __init__(self, received: int, missing: int | None, peer: Any = None) -> None:
        self.received = received
        self.missing = missing
        self.peer = peer
        where = f" from {format_peer(peer)}" if peer is not None else ""
        need = f"{missing} more bytes" if missing is not None else "a delimiter"
        super().__init__(f"stream ended mid-frame{where}: {received} bytes buffered, needed {need}")


class NetworkError(AsyncNetError, OSError):
    """A connection or socket operation failed (refused, reset, unreachable...)."""

    def __init__(self, message: str, peer: Any = None, phase: str | None = None) -> None:
        self.peer = peer
        self.phase = phase
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else super().__str__()


class OperationTimeout(AsyncNetError, TimeoutError):
    """An operation did not finish in time; names the peer and the phase."""

    def __init__(self, peer: Any, phase: str, timeout: float | None) -> None:
        self.peer = peer
        self.phase = phase
        self.timeout = timeout
        limit = f" after {timeout:g} s" if timeout is not None else ""
        super().__init__(f"timed out{limit} during {phase} with {format_peer(peer)}")

    def __str__(self) -> str:
        return str(self.args[0])


class FrameTimeout(OperationTimeout, PeerProtocolError):
    """A peer started a frame and did not finish it in time (a slowloris).

    It is a :class:`TimeoutError` for callers that catch timeouts, and a
    :class:`~asyncnet.errors.PeerProtocolError` so the server closes the connection
    and counts it like other peer faults.
    """

    def __init__(self, peer: object, timeout: float, buffered: int) -> None:
        super().__init__(peer, "frame", timeout)
        self.buffered = buffered
        self.args = (f"{self.args[0]} ({buffered} bytes of an unfinished frame)",)


class WriteTimeout(OperationTimeout):
    """The peer did not read what we wrote within the write timeout."""


class NoResponse(OperationTimeout):
    """A datagram request got no reply after every retry."""

    def __init__(self, peer: Any, attempts: int, timeout: float | None) -> None:
        self.attempts = attempts
        super().__init__(peer, f"request ({attempts} attempts, no reply)", timeout)
