"""Every server option, declared once: its name, type, default and meaning.

The options of each kind of server are a :class:`~typing.TypedDict`; the servers and
the factories take them as ``**options: Unpack[...]``.  Callers keep writing plain
keyword arguments (``tcp_server(Upper, port=0, idle_timeout=5)``), and a type checker
still catches a misspelt option or a value of the wrong type.  An option's default is
the ``Default`` in its annotation; the server checks every value when it is built
(:class:`~asyncnet.errors.ConfigurationError` names the option).
"""

from __future__ import annotations

import socket
import ssl as ssl_module
from collections.abc import Iterable
from typing import Annotated, TypedDict

from .._loopback import DEFAULT_HOST
from .._options import Default, defaults_of
from ._reflection import SourceFilter

__all__ = ["DatagramOptions", "ListenOptions", "StreamOptions", "TCPOptions"]


class ListenOptions(TypedDict, total=False):
    """Where a TCP or UDP server listens (in :class:`TCPOptions` and :class:`DatagramOptions`)."""

    host: Annotated[str | None, Default(DEFAULT_HOST)]
    """The address to listen on: ``127.0.0.1`` unless given (``"::1"`` for IPv6
    loopback).  A wildcard (``""``, ``0.0.0.0``, ``::``) is refused: listening on
    every interface needs ``all_interfaces=True``."""

    port: Annotated[int, Default(0)]
    """The port; 0 picks a free one, read it back from ``server.address``."""

    all_interfaces: Annotated[bool, Default(False)]
    """Listen on every interface: an explicit opt-in (do not pass ``host`` too)."""

    family: Annotated[int, Default(socket.AF_UNSPEC)]
    """``socket.AF_INET`` or ``socket.AF_INET6`` forces one address family when
    ``host`` resolves to both."""

    reuse_port: Annotated[bool, Default(False)]
    """Set ``SO_REUSEPORT``: several processes may listen on the same port."""


class StreamOptions(TypedDict, total=False):
    """The options of every stream server, TCP or Unix: what ``unix_server`` takes."""

    backlog: Annotated[int, Default(128)]
    """The kernel's queue of connections not yet accepted (as for ``loop.create_server``)."""

    ssl: Annotated[ssl_module.SSLContext | None, Default(None)]
    """Serve TLS with this :class:`ssl.SSLContext`."""

    ssl_handshake_timeout: Annotated[float | None, Default(None)]
    """Seconds a TLS client may take to finish its handshake (``ssl`` only;
    ``None``: asyncio's 60 s)."""

    max_connections: Annotated[int | None, Default(None)]
    """Beyond this many open connections a new one receives ``busy_message`` and is
    closed at once, rather than left waiting in the backlog (``None``: no limit)."""

    busy_message: Annotated[bytes | None, Default(b"error: server busy, try again later\n")]
    """What a connection refused by ``max_connections`` receives (``None``: nothing)."""

    idle_timeout: Annotated[float | None, Default(300.0)]
    """Close a connection after this many seconds with no bytes in either direction
    (a handler at work does not count as idle; ``None``: never)."""

    line_timeout: Annotated[float | None, Default(60.0)]
    """Line handlers: close a connection whose partial line has stayed incomplete
    this long, so that a slowloris dribbling bytes cannot pin it (``None``: never)."""

    write_timeout: Annotated[float | None, Default(60.0)]
    """Abort a connection whose peer has not read our output for this long
    (``None``: never)."""

    write_buffer_high: Annotated[int, Default(64 * 1024)]
    """Bytes of output buffered per connection; above it a line handler stops
    reading and a stream handler's ``drain()`` waits."""

    grace: Annotated[float, Default(5.0)]
    """On ``close()``, the seconds running handlers may take to finish before they
    are cancelled."""

    name: Annotated[str | None, Default(None)]
    """The server's name in log lines (``None``: the handler's name)."""

    proxy_protocol: Annotated[bool, Default(False)]
    """Every connection starts with a PROXY protocol v1/v2 header from a balancer
    (HAProxy ``send-proxy-v2``): ``handler.peer`` is then the real client.  Not
    with ``ssl``."""

    proxy_trusted: Annotated[Iterable[str] | str | None, Default(None)]
    """With ``proxy_protocol``: the networks that may connect (``None``: loopback only)."""

    proxy_header_timeout: Annotated[float, Default(5.0)]
    """With ``proxy_protocol``: seconds the header may take to arrive."""


class TCPOptions(ListenOptions, StreamOptions, total=False):
    """The options of a TCP stream server: what ``tcp_server`` takes.

    The :class:`ListenOptions` and the :class:`StreamOptions`, and:
    """

    reuse_address: Annotated[bool, Default(True)]
    """Set ``SO_REUSEADDR``: restart at once on a port whose old connections linger."""

    sock: Annotated[socket.socket | None, Default(None)]
    """Serve on this already-bound listening socket (TCP or Unix) instead of binding:
    one inherited from systemd (:func:`~asyncnet.servers.sockets_from_systemd`) or a
    supervisor.  ``host``, ``port`` and ``path`` are then ignored."""


class DatagramOptions(ListenOptions, total=False):
    """The options of a datagram (UDP) server: what ``udp_server`` takes.

    The :class:`ListenOptions`, and:
    """

    allow_broadcast: Annotated[bool, Default(False)]
    """Set ``SO_BROADCAST``."""

    max_pending: Annotated[int, Default(1000)]
    """How many handler coroutines may be suspended at once; datagrams beyond it are
    dropped and counted, as a flooded UDP service should."""

    receive_buffer: Annotated[int | None, Default(None)]
    """``SO_RCVBUF`` in bytes: how many datagrams may queue while the loop is busy
    (``None``: the OS default)."""

    drop_sources: Annotated[SourceFilter | None, Default(SourceFilter())]
    """Which sources are never answered, and how many repeats a source may have
    answered (its reply budget), so that no forged datagram can start or keep up a
    reflection loop (``None``: answer everybody)."""

    grace: Annotated[float, Default(1.0)]
    """On ``close()``, the seconds suspended handlers may take to finish before they
    are cancelled."""

    name: Annotated[str | None, Default(None)]
    """The server's name in log lines (``None``: the handler's class name)."""


# Read every default now: an option declared without one fails at import, not in use.
for _declared in (ListenOptions, StreamOptions, TCPOptions, DatagramOptions):
    defaults_of(_declared)
del _declared
