"""FTP errors: one root, :class:`FTPError`; each class also derives from its kind.

A refused command becomes :class:`FTPReplyError` naming the server's reply (code and
text), the command and the phase; what a hostile or broken server does is also a
:class:`~asyncnet.errors.PeerProtocolError`; a control connection that ends without
a reply is also a :class:`~asyncnet.errors.NetworkError`.  A path we were asked to
send with CR/LF in it is a :class:`~asyncnet.errors.LocalProtocolError` (a
``ValueError``), raised as it is.
"""

from __future__ import annotations

from typing import Any

from ..errors import AsyncNetError, NetworkError, PeerProtocolError, format_peer
from ..text import printable

__all__ = [
    "FTPAuthError",
    "FTPConnectionClosed",
    "FTPError",
    "FTPPermanentError",
    "FTPReplyError",
    "FTPTemporaryError",
    "IncompleteTransfer",
    "IntegrityError",
    "OversizedTransfer",
    "ReplyTooLong",
    "TreeLimitExceeded",
    "UnsafeRemotePath",
]


class FTPError(AsyncNetError):
    """Root of the FTP package's errors: ``except FTPError`` catches every class here."""


class FTPReplyError(FTPError):
    """The server answered a command with a code we did not expect.

    ``code`` is the three-digit reply code (a string, as on the wire), ``text`` the
    reply's text as the server sent it, ``command`` the command as sent (a password
    is never included) and ``phase`` what the client was doing.  The message shows
    the text with control characters escaped (:func:`~asyncnet.text.printable`): it
    ends up on terminals, and the server chose it.
    """

    def __init__(self, code: str, text: str, *, phase: str, peer: Any = None) -> None:
        self.code = code
        self.text = text
        self.phase = phase
        self.peer = peer
        where = f" {format_peer(peer)}" if peer is not None else ""
        super().__init__(f"{phase}: server{where} replied {printable(f'{code} {text}')}".rstrip())

    def __str__(self) -> str:
        return str(self.args[0])

    @property
    def permanent(self) -> bool:
        """True for a 5xx reply: retrying the same command will fail again."""
        return self.code.startswith("5")


class FTPTemporaryError(FTPReplyError):
    """A 4xx reply (e.g. 421 service closing, 425 no data connection, 451/452 disk)."""


class FTPPermanentError(FTPReplyError):
    """A 5xx reply (e.g. 550 no such file or permission denied, 552 quota)."""


class FTPAuthError(FTPPermanentError):
    """Login refused (530), or the server asked for something we cannot give."""


class FTPConnectionClosed(FTPError, NetworkError):
    """The server closed the control connection without a (complete) reply."""


class ReplyTooLong(FTPError, PeerProtocolError):
    """A reply line or a multi-line reply went over its limit (a hostile server)."""


class UnsafeRemotePath(FTPError, PeerProtocolError):
    """A name from the server would escape the download directory or is not a name.

    Raised for ``..``, absolute paths, backslashes, NUL and control characters in a
    listing, before anything is written locally.
    """


class TreeLimitExceeded(UnsafeRemotePath):
    """A recursive download went deeper, or found more files, than its caps allow."""


class IntegrityError(FTPError, PeerProtocolError):
    """The transferred bytes do not match what the server announced (size, sha256).

    The partial file is kept as ``name.part``; the final name is never created.
    """


class IncompleteTransfer(IntegrityError):
    """The data connection ended before the announced number of bytes arrived."""

    def __init__(self, message: str, *, received: int, expected: int | None) -> None:
        self.received = received
        self.expected = expected
        super().__init__(message)


class OversizedTransfer(IntegrityError):
    """More bytes arrived than the server's SIZE announced.

    The download stops at the first byte past it: ``received`` is ``expected + 1``
    and ``name.part`` holds those bytes, so a server that lies about SIZE (or a file
    that grows without end) cannot fill the disk.
    """

    def __init__(self, message: str, *, received: int, expected: int) -> None:
        self.received = received
        self.expected = expected
        super().__init__(message)
