"""``tcp_server``, ``unix_server``, ``udp_server``: the servers by the names people use.

Their options are declared once, in :class:`~asyncnet.servers.TCPOptions`,
:class:`~asyncnet.servers.StreamOptions` and :class:`~asyncnet.servers.DatagramOptions`;
each factory takes them as typed keyword arguments, so a type checker catches
``tcp_server(H, prot=9999)`` or ``port="9999"``.  The values are checked again at
construction (:class:`~asyncnet.errors.ConfigurationError` names the option).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Unpack

from ._options import check_names
from .servers import (
    BaseHandler,
    DatagramHandler,
    DatagramOptions,
    DatagramServer,
    StreamOptions,
    StreamServer,
    TCPOptions,
)

__all__ = ["tcp_server", "udp_server", "unix_server"]


def tcp_server(handler: Callable[[], BaseHandler], **options: Unpack[TCPOptions]) -> StreamServer:
    """A TCP :class:`StreamServer` for ``handler`` (127.0.0.1, port 0 unless given).

    ``options``: the :class:`~asyncnet.servers.TCPOptions`.  ``sock=`` serves on an
    inherited listening socket instead (TCP or Unix).
    """
    check_names("tcp_server", TCPOptions, options)
    return StreamServer(handler, **options)


def unix_server(
    handler: Callable[[], BaseHandler], path: str, **options: Unpack[StreamOptions]
) -> StreamServer:
    """A :class:`StreamServer` on the Unix domain socket ``path``.

    ``options``: the :class:`~asyncnet.servers.StreamOptions`.
    """
    check_names("unix_server", StreamOptions, options)
    return StreamServer(handler, path=path, **options)


def udp_server(
    handler: Callable[[], DatagramHandler] | DatagramHandler, **options: Unpack[DatagramOptions]
) -> DatagramServer:
    """A UDP :class:`DatagramServer` for ``handler`` (127.0.0.1, port 0 unless given).

    ``options``: the :class:`~asyncnet.servers.DatagramOptions`.
    """
    check_names("udp_server", DatagramOptions, options)
    return DatagramServer(handler, **options)
