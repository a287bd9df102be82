"""Listening sockets handed over by systemd or a supervisor, for ``StreamServer(sock=...)``.

With socket activation systemd binds the port and keeps it open across service
restarts; the service finds the sockets at file descriptors 3, 4, ... and is told
how many in ``LISTEN_FDS`` (``LISTEN_PID`` says which process they are for,
``LISTEN_FDNAMES`` optionally names them).  Connections that arrive while the
service restarts wait in the kernel's backlog instead of being refused::

    # upper.socket: [Socket] ListenStream=127.0.0.1:9999
    # upper.service: ExecStart=python -m myservice
    [sock] = sockets_from_systemd()
    run_servers(tcp_server(Upper, sock=sock))

The protocol is sd_listen_fds(3); this module needs no libsystemd.
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping

from ..errors import ConfigurationError

__all__ = ["SD_LISTEN_FDS_START", "named_sockets_from_systemd", "sockets_from_systemd"]

SD_LISTEN_FDS_START = 3
"""The first file descriptor systemd passes (sd_listen_fds(3))."""

_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def _passed(environ: MutableMapping[str, str], unset_environment: bool) -> tuple[int, list[str]]:
    pid, count, names = (environ.get(name) for name in _VARIABLES)
    if unset_environment:
        # Child processes must not take the sockets for theirs.
        for name in _VARIABLES:
            environ.pop(name, None)
    if pid is None or count is None:
        return 0, []
    try:
        if int(pid) != os.getpid():
            return 0, []  # meant for another process (a parent that exec'd us?)
        n = int(count)
    except ValueError:
        raise ConfigurationError(
            f"LISTEN_PID={pid!r} / LISTEN_FDS={count!r} are not numbers"
        ) from None
    if n < 0:
        raise ConfigurationError(f"LISTEN_FDS={count!r} is negative")
    labels = names.split(":") if names else []
    if labels and len(labels) != n:
        raise ConfigurationError(f"LISTEN_FDNAMES names {len(labels)} sockets, LISTEN_FDS={n}")
    return n, labels or ["unknown"] * n


def sockets_from_systemd(
    *, unset_environment: bool = True, environ: MutableMapping[str, str] | None = None
) -> list[socket.socket]:
    """The sockets passed with ``LISTEN_FDS`` (in order), or ``[]`` when none were passed.

    The descriptors are made close-on-exec, and the ``LISTEN_*`` variables are
    removed from the environment unless ``unset_environment=False``.
    """
    count, _ = _passed(os.environ if environ is None else environ, unset_environment)
    return [_adopt(fd) for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count)]


def named_sockets_from_systemd(
    *, unset_environment: bool = True, environ: MutableMapping[str, str] | None = None
) -> dict[str, list[socket.socket]]:
    """The passed sockets grouped by their ``FileDescriptorName=`` (``LISTEN_FDNAMES``)."""
    count, labels = _passed(os.environ if environ is None else environ, unset_environment)
    named: dict[str, list[socket.socket]] = {}
    for i in range(count):
        named.setdefault(labels[i], []).append(_adopt(SD_LISTEN_FDS_START + i))
    return named


def _adopt(fd: int) -> socket.socket:
    try:
        os.set_inheritable(fd, False)
        return socket.socket(fileno=fd)
    except OSError as exc:
        raise ConfigurationError(
            f"LISTEN_FDS: file descriptor {fd} is not a socket ({exc.strerror})"
        ) from None
