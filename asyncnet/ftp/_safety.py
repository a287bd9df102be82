"""What a hostile FTP server must not be able to make the client do.

* :func:`check_argument` refuses CR, LF and NUL in anything that goes into a
  command line, before a byte is sent (no command smuggling).
* :func:`safe_name` / :func:`local_path_for` turn names from a server listing into
  local paths that cannot leave the download directory (``..``, absolute paths,
  backslashes, NUL and control characters are refused).
* :func:`pin_passive_host` is the rule for PASV replies: the data connection goes
  to the host the control connection is connected to, whatever the reply names
  (ftplib's behaviour since CVE-2021-4189).
"""

from __future__ import annotations

import logging
import os
import unicodedata
from pathlib import Path, PurePosixPath

from ..protocols import check_line_argument
from ._errors import UnsafeRemotePath

__all__ = ["check_argument", "local_path_for", "pin_passive_host", "safe_name"]

logger = logging.getLogger(__name__)


def check_argument(value: str, what: str = "path") -> str:
    """Return ``value`` if it can go into an FTP command line; raise otherwise.

    CR or LF would end the command early and start another one chosen by whoever
    supplied the name; NUL truncates it on many servers.  The rule is the one every
    line protocol in asyncnet uses (:func:`~asyncnet.protocols._lines.check_line_argument`).
    """
    return check_line_argument(value, f"FTP {what}")


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf") and char not in ("\u200d",)


def safe_name(name: str) -> str:
    """Return ``name`` if it is one harmless path component; raise UnsafeRemotePath."""
    if name in ("", ".", ".."):
        raise UnsafeRemotePath(f"unsafe name from server: {name!r} is not a file name")
    if "/" in name or "\\" in name:
        raise UnsafeRemotePath(f"unsafe name from server: {name!r} contains a path separator")
    if any(_is_control(c) for c in name):
        raise UnsafeRemotePath(
            f"unsafe name from server: {name!r} contains NUL or control characters"
        )
    return name


def local_path_for(root: Path, remote_relative: str | PurePosixPath) -> Path:
    """The local path under ``root`` for a server-supplied relative path.

    Every component must pass :func:`safe_name`; the result is checked to stay
    under ``root`` after resolving symlinks already on disk.
    """
    text = str(remote_relative)
    if text.startswith("/") or text.startswith("\\"):
        raise UnsafeRemotePath(f"unsafe name from server: {text!r} is an absolute path")
    parts = text.split("/")
    for part in parts:
        safe_name(part)
    candidate = root.joinpath(*parts)
    real_root = os.path.realpath(root)
    real = os.path.realpath(candidate)
    if os.path.commonpath([real_root, real]) != real_root:
        raise UnsafeRemotePath(
            f"unsafe name from server: {text!r} resolves outside {root} (a symlink?)"
        )
    return candidate


def pin_passive_host(announced: str | None, control_peer: str) -> str:
    """The host to open a passive data connection to: always the control peer.

    A PASV reply names an IPv4 address; a hostile or NATed server can name any
    host (a port scan through the client, or a leak of the data).  Like ftplib, we
    ignore it and connect to the address the control connection already uses.
    """
    if announced and announced not in (control_peer, "0.0.0.0"):
        logger.debug(
            "PASV reply named %s; connecting to the control peer %s instead",
            announced,
            control_peer,
        )
    return control_peer
