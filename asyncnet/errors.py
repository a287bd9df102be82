"""One exception tree for the whole package: the shared kinds, and a root per domain.

Every asyncnet error derives from :class:`AsyncNetError`.  This module holds the
*kinds* every part of the package raises as they are (the PROXY protocol parser's
``ProxyHeaderError``, in :mod:`asyncnet.protocols`, is one more
:class:`PeerProtocolError`), and the roots of the domains that have no error module
of their own: :class:`ServerError` (:class:`AddressInUse`), :class:`ClientError`
(:class:`NoResponse`) and :class:`CreosoteError` (:class:`BroadcastNotAllowed`), each
also the kind it is.

* :class:`ConfigurationError` (a ``ValueError``): a bad argument or option, refused
  before anything touches the network;
* :class:`StateError` (a ``RuntimeError``): an object used in the wrong state of its
  lifecycle (started twice, used before start or after close);
* :class:`ProtocolError`: bytes broke a protocol's rules, split into what the *peer*
  did wrong (:class:`PeerProtocolError`: an over-long line, a frame over the limit,
  a truncated frame) and what *we* were asked to send (:class:`LocalProtocolError`);
* :class:`NetworkError` (an ``OSError``, ``errno`` kept): the OS said no;
* :class:`OperationTimeout` (a ``TimeoutError``): an operation ran out of time.

The mail, FTP and web packages each have one root (``MailError``, ``FTPError``,
``WebError``) for the classes they define, and each of those classes also derives
from the kind it is, so ``except NetworkError`` or ``except PeerProtocolError``
written for the rest of asyncnet catches theirs too.  Each error that concerns a
peer names it, and the phase it was in, in its message.

The shared kinds::

    AsyncNetError
    +-- ConfigurationError (ValueError)      a bad argument or option, named
    |   +-- BroadcastNotAllowed (PermissionError, CreosoteError)
    +-- StateError (RuntimeError)            started twice, used before start
    +-- ProtocolError
    |   +-- LocalProtocolError (ValueError)  we were asked to send something invalid
    |   +-- PeerProtocolError                the peer sent something invalid
    |       +-- FrameTooLarge                a frame over its limit ...
    |       |   +-- LineTooLong              ... of which a line is one kind
    |       +-- IncompleteFrame
    |       +-- FrameTimeout (also an OperationTimeout)
    +-- NetworkError (OSError)               the OS said no; ``errno`` is kept
    |   +-- AddressInUse (ServerError)       a server's address is taken
    +-- OperationTimeout (TimeoutError)
        +-- WriteTimeout, NoResponse (ClientError), FrameTimeout

``OSError``, ``ssl.SSLError`` and ``socket.gaierror`` become these in one place,
``asyncnet._boundary``.  The whole tree, domains included, is drawn in
``docs/errors.md``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AddressInUse",
    "AsyncNetError",
    "BroadcastNotAllowed",
    "ClientError",
    "ConfigurationError",
    "CreosoteError",
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
    "ServerError",
    "StateError",
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


class CreosoteError(AsyncNetError):
    """Root of the errors only creosote's emitters and buckets raise."""


class BroadcastNotAllowed(CreosoteError, ConfigurationError, PermissionError):
    """A broadcast destination without ``broadcast=True`` (refused before sending)."""


class StateError(AsyncNetError, RuntimeError):
    """An object used in the wrong state: started twice, used before start or after close.

    Also a parser asked for what its mode does not give (a line inside a body) and a
    transfer used outside its ``async with`` block: misuse, never the peer's doing.
    """


class ProtocolError(AsyncNetError):
    """Bytes on the wire broke the rules of the protocol."""


class PeerProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""


class LocalProtocolError(ProtocolError, ValueError):
    """We were asked to send something the protocol does not allow."""


class FrameTooLarge(PeerProtocolError):
    """A frame (or a length prefix announcing one) exceeds the frame size limit."""

    def __init__(self, size: int, limit: int, peer: Any = None) -> None:
        self.size = size
        self.limit = limit
        self.peer = peer
        where = f" from {format_peer(peer)}" if peer is not None else ""
        super().__init__(f"frame too large{where}: {size} bytes (limit {limit})")


class LineTooLong(FrameTooLarge):
    """No delimiter arrived within the line length limit.

    A line is a kind of frame, so ``except FrameTooLarge`` catches both; ``size``
    (the bytes received so far) is also available as ``received``.
    """

    def __init__(self, limit: int, received: int, peer: Any = None) -> None:
        self.size = self.received = received
        self.limit = limit
        self.peer = peer
        where = f" from {format_peer(peer)}" if peer is not None else ""
        PeerProtocolError.__init__(
            self, f"line too long{where}: {received} bytes without a delimiter (limit {limit})"
        )


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
    """A connection or socket operation failed (refused, reset, unreachable...).

    ``errno`` is the OS's error number when there was one (``None`` otherwise) and
    ``reason`` the words for it, without the subject.
    """

    def __init__(
        self,
        message: str,
        peer: Any = None,
        phase: str | None = None,
        *,
        errno: int | None = None,
        reason: str | None = None,
    ) -> None:
        self.peer = peer
        self.phase = phase
        super().__init__(message)
        self.errno = errno
        self.reason = reason if reason is not None else message

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else super().__str__()


class ServerError(AsyncNetError):
    """Root of the errors only a server raises."""


class AddressInUse(ServerError, NetworkError):
    """A server could not bind: another socket holds the address (``EADDRINUSE``)."""


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


class ClientError(AsyncNetError):
    """Root of the errors only a client raises."""


class NoResponse(ClientError, OperationTimeout):
    """A datagram request got no reply after every retry."""

    def __init__(self, peer: Any, attempts: int, timeout: float | None) -> None:
        self.attempts = attempts
        super().__init__(peer, f"request ({attempts} attempts, no reply)", timeout)
