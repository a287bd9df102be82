"""``tcp_server``, ``unix_server``, ``udp_server``: the servers by the names people use.

Every option is an explicit keyword parameter (no ``**options``), so a type checker
catches ``tcp_server(H, prot=9999)`` or ``port="9999"``; the values are checked
again at construction (:class:`~asyncnet.errors.ConfigurationError` names the
option).  The options are documented on :class:`StreamServer` and
:class:`DatagramServer`.
"""

from __future__ import annotations

import socket
import ssl as ssl_module
from collections.abc import Callable, Iterable

from ._loopback import DEFAULT_HOST
from .servers import BaseHandler, DatagramHandler, DatagramServer, SourceFilter, StreamServer

__all__ = ["tcp_server", "udp_server", "unix_server"]

_BUSY = b"error: server busy, try again later\n"


def tcp_server(
    handler: Callable[[], BaseHandler],
    *,
    host: str | None = DEFAULT_HOST,
    port: int = 0,
    all_interfaces: bool = False,
    family: int = socket.AF_UNSPEC,
    backlog: int = 128,
    reuse_address: bool = True,
    reuse_port: bool = False,
    ssl: ssl_module.SSLContext | None = None,
    ssl_handshake_timeout: float | None = None,
    max_connections: int | None = None,
    busy_message: bytes | None = _BUSY,
    idle_timeout: float | None = 300.0,
    line_timeout: float | None = 60.0,
    write_timeout: float | None = 60.0,
    write_buffer_high: int = 64 * 1024,
    grace: float = 5.0,
    name: str | None = None,
    sock: socket.socket | None = None,
    proxy_protocol: bool = False,
    proxy_trusted: Iterable[str] | str | None = None,
    proxy_header_timeout: float = 5.0,
) -> StreamServer:
    """A TCP :class:`StreamServer` for ``handler`` (127.0.0.1, port 0 unless given).

    ``sock`` serves on an inherited listening socket instead (TCP or Unix).
    """
    return StreamServer(
        handler,
        host=host,
        port=port,
        all_interfaces=all_interfaces,
        family=family,
        backlog=backlog,
        reuse_address=reuse_address,
        reuse_port=reuse_port,
        ssl=ssl,
        ssl_handshake_timeout=ssl_handshake_timeout,
        max_connections=max_connections,
        busy_message=busy_message,
        idle_timeout=idle_timeout,
        line_timeout=line_timeout,
        write_timeout=write_timeout,
        write_buffer_high=write_buffer_high,
        grace=grace,
        name=name,
        sock=sock,
        proxy_protocol=proxy_protocol,
        proxy_trusted=proxy_trusted,
        proxy_header_timeout=proxy_header_timeout,
    )


def unix_server(
    handler: Callable[[], BaseHandler],
    path: str,
    *,
    backlog: int = 128,
    ssl: ssl_module.SSLContext | None = None,
    ssl_handshake_timeout: float | None = None,
    max_connections: int | None = None,
    busy_message: bytes | None = _BUSY,
    idle_timeout: float | None = 300.0,
    line_timeout: float | None = 60.0,
    write_timeout: float | None = 60.0,
    write_buffer_high: int = 64 * 1024,
    grace: float = 5.0,
    name: str | None = None,
    proxy_protocol: bool = False,
    proxy_trusted: Iterable[str] | str | None = None,
    proxy_header_timeout: float = 5.0,
) -> StreamServer:
    """A :class:`StreamServer` on the Unix domain socket ``path``."""
    return StreamServer(
        handler,
        path=path,
        backlog=backlog,
        ssl=ssl,
        ssl_handshake_timeout=ssl_handshake_timeout,
        max_connections=max_connections,
        busy_message=busy_message,
        idle_timeout=idle_timeout,
        line_timeout=line_timeout,
        write_timeout=write_timeout,
        write_buffer_high=write_buffer_high,
        grace=grace,
        name=name,
        proxy_protocol=proxy_protocol,
        proxy_trusted=proxy_trusted,
        proxy_header_timeout=proxy_header_timeout,
    )


def udp_server(
    handler: Callable[[], DatagramHandler] | DatagramHandler,
    *,
    host: str | None = DEFAULT_HOST,
    port: int = 0,
    all_interfaces: bool = False,
    family: int = socket.AF_UNSPEC,
    reuse_port: bool = False,
    allow_broadcast: bool = False,
    max_pending: int = 1000,
    receive_buffer: int | None = None,
    drop_sources: SourceFilter | None = SourceFilter(),  # noqa: B008 (immutable)
    grace: float = 1.0,
    name: str | None = None,
) -> DatagramServer:
    """A UDP :class:`DatagramServer` for ``handler`` (127.0.0.1, port 0 unless given)."""
    return DatagramServer(
        handler,
        host=host,
        port=port,
        all_interfaces=all_interfaces,
        family=family,
        reuse_port=reuse_port,
        allow_broadcast=allow_broadcast,
        max_pending=max_pending,
        receive_buffer=receive_buffer,
        drop_sources=drop_sources,
        grace=grace,
        name=name,
    )
