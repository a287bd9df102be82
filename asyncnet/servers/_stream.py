"""The stream server: TCP (IPv4/IPv6) or a Unix domain socket, one handler per connection."""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import ssl as ssl_module
from collections.abc import Callable
from typing import Any, Unpack

from .._loopback import check_bind_host
from .._options import resolve
from .._ratelimit import RateLimitedLog
from ..errors import ConfigurationError, format_peer
from . import _accept_errors
from ._base import ServerBase
from ._connection import DeadlineSweep, LineConnection, Registry, StreamConnection
from ._handlers import BaseHandler, LineHandler, StreamHandler
from ._options import TCPOptions
from ._proxy_protocol import HandshakeFactory, ProxyProtocolOptions
from ._validate import check_bytes, check_count, check_family, check_port, check_seconds

logger = logging.getLogger("asyncnet.server")

__all__ = ["StreamServer"]

READ_SIZE = 64 * 1024
"""The most a plain asyncio transport reads at once (see ``_register``)."""

_Connection = LineConnection | StreamConnection


class StreamServer(ServerBase):
    """Serve a :class:`LineHandler` or :class:`StreamHandler` over TCP or a Unix socket.

    The server is an object inside *your* event loop::

        async with StreamServer(Upper, port=0) as server:
            print(server.address)      # ('127.0.0.1', 40123)
            await other_work()         # leaving the block shuts it down gracefully

    ``options`` are the :class:`~asyncnet.servers.TCPOptions` (where and how to
    listen, limits, timeouts, TLS, the PROXY protocol), each documented there with its
    default.  ``path`` listens on that Unix domain socket instead of TCP: the options
    of :class:`~asyncnet.servers.ListenOptions` then do not apply
    (:func:`asyncnet.unix_server` does not take them).
    """

    def __init__(
        self,
        handler: Callable[[], BaseHandler],
        *,
        path: str | None = None,
        **options: Unpack[TCPOptions],
    ) -> None:
        opts = resolve(type(self).__name__, TCPOptions, options)
        super().__init__(
            grace=opts["grace"], name=opts["name"] or getattr(handler, "__name__", "stream")
        )
        sock = opts["sock"]
        if sock is not None and sock.type != socket.SOCK_STREAM:
            raise ConfigurationError(f"sock must be a SOCK_STREAM socket, not {sock!r}")
        ssl = opts["ssl"]
        if opts["proxy_protocol"] and ssl is not None:
            # The balancer sends the header in clear before any TLS handshake.
            raise ConfigurationError("proxy_protocol with ssl is not supported yet")
        self.sock = sock
        self.proxy = (
            ProxyProtocolOptions.build(opts["proxy_trusted"], opts["proxy_header_timeout"])
            if opts["proxy_protocol"]
            else None
        )
        if not callable(handler):
            raise ConfigurationError(f"handler must be a handler class or factory, not {handler!r}")
        if isinstance(handler, type) and not issubclass(handler, LineHandler | StreamHandler):
            raise ConfigurationError(
                f"handler {handler.__name__} is not a LineHandler or StreamHandler; "
                "stream servers need one of those"
            )
        if path is None:
            self._host = check_bind_host(opts["host"], opts["all_interfaces"])
        elif opts["all_interfaces"]:
            raise ConfigurationError("all_interfaces does not apply to a Unix socket path")
        else:
            self._host = None
        check_port(opts["port"])
        check_family(opts["family"])
        for label in ("idle_timeout", "line_timeout", "write_timeout", "ssl_handshake_timeout"):
            check_seconds(label, opts[label])
        check_count("max_connections", opts["max_connections"], optional=True)
        check_count("backlog", opts["backlog"], minimum=0)
        check_count("write_buffer_high", opts["write_buffer_high"])
        check_bytes("busy_message", opts["busy_message"])
        if path is not None and not isinstance(path, str):
            raise ConfigurationError(f"path must be a str, not {path!r}")
        if ssl is not None and not isinstance(ssl, ssl_module.SSLContext):
            raise ConfigurationError(f"ssl must be an ssl.SSLContext or None, not {ssl!r}")
        self.handler_factory = handler
        self.port = opts["port"]
        self.path = path
        self.family = opts["family"]
        self.backlog = opts["backlog"]
        self.reuse_address = opts["reuse_address"]
        self.reuse_port = opts["reuse_port"]
        self.ssl = ssl
        self.ssl_handshake_timeout = opts["ssl_handshake_timeout"]
        self.max_connections = opts["max_connections"]
        self.busy_message = opts["busy_message"]
        self.idle_timeout = opts["idle_timeout"]
        self.line_timeout = opts["line_timeout"]
        self.write_timeout = opts["write_timeout"]
        self.write_buffer_high = opts["write_buffer_high"]
        self._server: asyncio.Server | None = None
        self._connections: Registry[_Connection] = Registry()
        self.deadlines = DeadlineSweep(
            self._connections,
            idle=self.idle_timeout,
            line=self.line_timeout,
            write=self.write_timeout,
        )
        """The clock behind the idle, line and write timeouts (one timer per server)."""
        self._all_gone: asyncio.Event | None = None
        self._accept_error_logged_at = -math.inf
        self._watched: list[int] = []
        self._handshakes: HandshakeFactory | None = None
        self._refusal_log = RateLimitedLog()
        self._fd_log = RateLimitedLog()
        self._fd_threshold = _accept_errors.fd_threshold()
        self._fd_watch = False  # the limit is near: check every connection's descriptor

    # -- binding ------------------------------------------------------------------

    async def _bind(self) -> None:
        loop = self.loop
        factory: Callable[[], asyncio.Protocol] = self._make_connection
        if self.proxy is not None:
            factory = self._handshakes = self.proxy.wrap(factory, name=self.name, stats=self.stats)
        if self.sock is not None and self.sock.family == socket.AF_UNIX:
            self._server = await loop.create_unix_server(
                factory,
                sock=self.sock,
                backlog=self.backlog,
                ssl=self.ssl,
                ssl_handshake_timeout=self.ssl_handshake_timeout if self.ssl else None,
            )
        elif self.sock is not None:
            self._server = await loop.create_server(
                factory,
                sock=self.sock,
                backlog=self.backlog,
                ssl=self.ssl,
                ssl_handshake_timeout=self.ssl_handshake_timeout if self.ssl else None,
            )
        elif self.path is not None:
            self._server = await loop.create_unix_server(
                factory,
                self.path,
                backlog=self.backlog,
                ssl=self.ssl,
                ssl_handshake_timeout=self.ssl_handshake_timeout if self.ssl else None,
            )
        else:
            self._server = await loop.create_server(
                factory,
                self._host,
                self.port,
                family=self.family,
                backlog=self.backlog,
                reuse_address=self.reuse_address,
                reuse_port=self.reuse_port or None,
                ssl=self.ssl,
                ssl_handshake_timeout=self.ssl_handshake_timeout if self.ssl else None,
            )

        _accept_errors.tolerate_late_accepts(self._server)
        self._watched = [sock.fileno() for sock in self._server.sockets]
        _accept_errors.watch(self.loop, self, self._watched)

    def _bind_target(self) -> str:
        if self.sock is not None:
            return f"inherited socket (fd {self.sock.fileno()})"
        if self.path is not None:
            return f"unix {self.path}"
        return f"tcp {format_peer((self._host or '*', self.port))}"

    @property
    def addresses(self) -> list[Any]:
        """Every bound address: ``(host, port)`` tuples, or the Unix socket path."""
        if self._server is None or not self._server.sockets:
            return []
        return [
            name[:2] if isinstance(name := sock.getsockname(), tuple) else self.path or name
            for sock in self._server.sockets
        ]

    @property
    def connections(self) -> int:
        """Number of connections open right now."""
        return len(self._connections)

    def _make_connection(self) -> _Connection:
        handler = self.handler_factory()
        if isinstance(handler, LineHandler):
            return LineConnection(self, handler)
        if isinstance(handler, StreamHandler):
            return StreamConnection(self, handler)
        raise TypeError(
            f"{type(handler).__name__} is not a LineHandler or StreamHandler; "
            "stream servers need one of those"
        )

    # -- connection bookkeeping (called by the connections) ----------------------

    def _register(self, conn: _Connection, transport: asyncio.Transport) -> bool:
        stats = self.stats
        if self._closing or (
            self.max_connections is not None and len(self._connections) >= self.max_connections
        ):
            stats.connections_refused += 1
            if not self._closing:
                # One line per interval, not per refusal: a flood must not flood the log.
                if since := self._refusal_log.hit(self.loop.time()):
                    logger.warning(
                        "%s: refused %d connection(s), latest %s, %d open (max_connections); "
                        "%d refused so far",
                        self.name,
                        since,
                        format_peer(transport.get_extra_info("peername")),
                        len(self._connections),
                        stats.connections_refused,
                    )
                if self.busy_message:
                    transport.write(self.busy_message)
            transport.close()
            return False
        transport.set_write_buffer_limits(high=self.write_buffer_high)
        if getattr(transport, "max_size", 0) > READ_SIZE:
            # asyncio's selector transports recv() up to 256 KiB per read: glibc
            # serves that with mmap() + munmap(), ~10 us per read whatever its size
            # (python/cpython#85451).  64 KiB comes from the heap.  (uvloop reads into
            # a buffer of its own and has no such attribute.)
            transport.max_size = READ_SIZE  # type: ignore[attr-defined]
        _accept_errors.check_headroom(self, transport, self.loop.time())
        self._connections.add(conn)
        self.deadlines.start()
        stats.connections_total += 1
        stats.connections_active += 1
        self.events.connection_opened()
        return True

    def _unregister(self, conn: _Connection) -> None:
        """Bookkeeping for a registered connection that has finished (called once).

        The connection has already left :attr:`_connections` (before its handler's
        ``finish()``, so that runs once).
        """
        connections = self._connections
        self.stats.connections_active = len(connections)
        if not connections and self._all_gone is not None:
            self._all_gone.set()
        self.events.connection_closed()  # last: a waiter sees the stats already updated

    # -- shutdown -----------------------------------------------------------------

    async def _shutdown(self, grace: float) -> None:
        assert self._server is not None
        _accept_errors.unwatch(self.loop, self._watched)
        self._server.close()  # stop listening before anything else
        if self._handshakes is not None:
            self._handshakes.close_all()  # connections still waiting for a PROXY header
        self._all_gone = asyncio.Event()
        if self._connections:
            for conn in list(self._connections):
                conn.shutdown()
            if self._connections and not await self._wait_all_gone(grace):
                logger.warning(
                    "%s: %d connections still busy after %g s grace; cancelling them",
                    self.name,
                    len(self._connections),
                    grace,
                )
                for conn in list(self._connections):
                    conn.abort()
                if not await self._wait_all_gone(5.0):
                    logger.error(
                        "%s: %d connections did not close", self.name, len(self._connections)
                    )
        # Refused connections and transports closing right now detach from the
        # asyncio server; on 3.12+ wait_closed() waits for them.  A bound keeps a
        # loop implementation that waits differently (3.11, uvloop) from hanging us.
        try:
            async with asyncio.timeout(2.0):
                await self._server.wait_closed()
        except TimeoutError:
            logger.debug("%s: asyncio.Server.wait_closed() did not return", self.name)
        await asyncio.sleep(0)  # let connection_lost callbacks scheduled by close() run
        self.deadlines.stop()
        if self.path is not None:
            _remove_socket_file(self.path)
        self._mark_closed()

    async def _wait_all_gone(self, timeout: float) -> bool:
        assert self._all_gone is not None
        if not self._connections:
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._all_gone.wait()
        except TimeoutError:
            return False
        return True


def _remove_socket_file(path: str) -> None:
    import os
    import stat

    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass
