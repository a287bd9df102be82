"""An async FTP client on aioftp: ftplib's verbs, streams, progress, safe downloads.

See :class:`FTPClient`; :class:`FTPServer` runs aioftp's server on loopback for
demos and tests.
"""

from __future__ import annotations

from .client import FTPClient, FTPSession
from .downloads import RemoteEntry
from .errors import (
    FTPAuthError,
    FTPConnectionClosed,
    FTPError,
    FTPPermanentError,
    FTPReplyError,
    FTPTemporaryError,
    IncompleteTransfer,
    IntegrityError,
    OversizedTransfer,
    ReplyTooLong,
    TreeLimitExceeded,
    UnsafeRemotePath,
)
from .integrity import DownloadResult, RemoteFingerprint
from .progress import ProgressCallback, RichTransfers, TransferProgress
from .server import FTPServer
from .streams import RemoteReader, RemoteWriter

__all__ = [
    "DownloadResult",
    "FTPAuthError",
    "FTPClient",
    "FTPConnectionClosed",
    "FTPError",
    "FTPPermanentError",
    "FTPReplyError",
    "FTPServer",
    "FTPSession",
    "FTPTemporaryError",
    "IncompleteTransfer",
    "IntegrityError",
    "OversizedTransfer",
    "ProgressCallback",
    "RemoteEntry",
    "RemoteFingerprint",
    "RemoteReader",
    "RemoteWriter",
    "ReplyTooLong",
    "RichTransfers",
    "TransferProgress",
    "TreeLimitExceeded",
    "UnsafeRemotePath",
]
