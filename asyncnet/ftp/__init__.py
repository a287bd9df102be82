"""An async FTP client on aioftp: ftplib's verbs, streams, progress, safe downloads.

See :class:`FTPClient`; :class:`FTPServer` runs aioftp's server (on loopback unless
asked otherwise) for demos, tests and real clients: curl, ftplib, active mode,
explicit FTPS.
"""

from __future__ import annotations

from ._client import FTPClient, FTPSession
from ._downloads import RemoteEntry
from ._errors import (
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
from ._integrity import DownloadResult, RemoteFingerprint
from ._progress import ProgressCallback, RichTransfers, TransferProgress
from ._server import FTPServer
from ._streams import RemoteReader, RemoteWriter

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
