"""The datagram server: UDP over IPv4 or IPv6, one handler for every datagram."""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Unpack, cast

from .._compat import read_datagrams_in_bursts
from .._eager import PENDING, start
from .._loopback import check_bind_host
from .._options import resolve
from ..errors import ConfigurationError, StateError, format_peer
from ._base import ServerBase
from ._handlers import DatagramHandler
from ._options import DatagramOptions
from ._reflection import SourceGuard, check_filter, guard_for
from ._validate import check_count, check_family, check_port

logger = logging.getLogger("asyncnet.server")

__all__ = ["DatagramServer"]

_DATAGRAM_READ_SIZE = 65536
"""Larger than any UDP datagram (65507 bytes over IPv4, 65527 over IPv6)."""
_BURST = 64
"""Most datagrams read per readiness event on a selector loop (see ``_read_burst``)."""


class _Endpoint(asyncio.DatagramProtocol):
    """Calls the handler for each datagram; replies go back to the sender."""

    def __init__(self, server: DatagramServer) -> None:
        self._server = server
        self._stats = server.stats
        self._events = server.events
        self._handler = server.handler
        self._handle = server.handler.handle
        self._run_in_task = type(server.handler).run_in_task
        self._transport: asyncio.DatagramTransport | None = None
        guard = server._source_guard
        self._admit = guard.admit if guard is not None else None
        self._answered = guard.answered if guard is not None else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def read_in_bursts(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bool:
        """On asyncio's selector loop, read every waiting datagram per readiness event.

        asyncio's datagram transport reads one datagram per event-loop iteration, so
        each datagram pays for a select() and a loop turn; socketserver.UDPServer
        pays only for the recvfrom().  Reading until EAGAIN (at most ``_BURST``)
        amortises the loop over whatever queued up meanwhile (see
        :func:`asyncnet._compat.read_datagrams_in_bursts` for how, and what it gains);
        ``transport.close()`` still removes the reader, and any other loop keeps its own.
        """
        if self._transport is None:
            return False
        self._recvfrom = sock.recvfrom
        return read_datagrams_in_bursts(loop, self._transport, sock, self._read_burst)

    def _read_burst(self) -> None:
        transport = self._transport
        recvfrom = self._recvfrom
        for _ in range(_BURST):
            if transport is None or transport.is_closing():
                return
            try:
                data, addr = recvfrom(_DATAGRAM_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # as asyncio's own reader: report it, carry on
                self.error_received(exc)
                continue
            self.datagram_received(data, addr)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        stats = self._stats
        stats.datagrams_in += 1
        stats.bytes_in += len(data)
        # The guard's verdict: None drops the datagram unanswered; else the
        # fingerprint to hand back with the reply (0: nothing to remember).
        key = 0 if self._admit is None else self._admit(data, addr)
        if key is None:
            self._events.datagram_handled()  # finished with it
            return
        try:
            reply = self._handle(data, addr)
            if reply is not None and reply.__class__ is not bytes:
                reply = self._await(reply, addr, key)
                if reply is PENDING:
                    return
        except Exception as exc:
            self._failed(exc, addr)
            self._events.datagram_handled()
            return
        if reply is not None:
            self._reply(reply, addr, key)
        self._events.datagram_handled()

    def _await(self, reply: Any, addr: Any, key: int) -> Any:
        if isinstance(reply, (bytearray, memoryview)):
            return bytes(reply)
        server = self._server
        if len(server._tasks) >= server.max_pending:
            server.stats.datagrams_dropped += 1
            if inspect.iscoroutine(reply):
                reply.close()
            return None
        value, task = start(
            reply,
            in_task=self._run_in_task,
            expected="handle() must return bytes, None or an awaitable",
        )
        if task is None:
            return value
        server._tasks.add(task)
        task.add_done_callback(lambda t: self._task_done(t, addr, key))
        return PENDING

    def _task_done(self, task: asyncio.Future[Any], addr: Any, key: int) -> None:
        self._server._tasks.discard(task)
        try:
            if task.cancelled():
                return
            exc = task.exception()
            if exc is not None:
                self._failed(exc, addr)
            elif (reply := task.result()) is not None:
                self._reply(reply, addr, key)
        finally:
            self._events.datagram_handled()

    def _reply(self, reply: bytes, addr: Any, key: int) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._stats.datagrams_out += 1
        self._stats.bytes_out += len(reply)
        transport.sendto(reply, addr)
        if key and self._answered is not None:
            self._answered(key, reply)

    def _failed(self, exc: BaseException, addr: Any) -> None:
        self._stats.handler_errors += 1
        logger.error(
            "%s failed for a datagram from %s: %r",
            type(self._handler).__name__,
            format_peer(addr),
            exc,
            exc_info=(type(exc), exc, exc.__traceback__),
        )

    def error_received(self, exc: Exception) -> None:
        # ICMP "port unreachable" for a reply to a client that has gone: nothing to
        # do but count it; the endpoint stays open for everybody else.
        self._stats.send_errors += 1
        logger.debug("%s: send error %r", self._server.name, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._server._endpoint_lost()


class DatagramServer(ServerBase):
    """Serve a :class:`DatagramHandler` over UDP.

    ``options`` are the :class:`~asyncnet.servers.DatagramOptions` (where to listen,
    how many handlers may wait, which sources are never answered), each documented
    there with its default.
    """

    def __init__(
        self,
        handler: Callable[[], DatagramHandler] | DatagramHandler,
        **options: Unpack[DatagramOptions],
    ) -> None:
        opts = resolve(type(self).__name__, DatagramOptions, options)
        instance = handler if isinstance(handler, DatagramHandler) else handler()
        if not isinstance(instance, DatagramHandler):
            raise ConfigurationError(f"{instance!r} is not a DatagramHandler")
        super().__init__(grace=opts["grace"], name=opts["name"] or type(instance).__name__)
        self._host = check_bind_host(opts["host"], opts["all_interfaces"])
        check_port(opts["port"])
        check_family(opts["family"])
        check_count("max_pending", opts["max_pending"])
        check_count("receive_buffer", opts["receive_buffer"], optional=True)
        self.handler = instance
        self.port = opts["port"]
        self.family = opts["family"]
        self.reuse_port = opts["reuse_port"]
        self.allow_broadcast = opts["allow_broadcast"]
        self.max_pending = opts["max_pending"]
        self.receive_buffer = opts["receive_buffer"]
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._lost: asyncio.Event | None = None
        self.drop_sources = check_filter(opts["drop_sources"])
        self._source_guard: SourceGuard | None = None

    async def _bind(self) -> None:
        self._lost = asyncio.Event()
        host = self._host
        if host is None:  # all_interfaces: UDP needs the wildcard address spelled out
            wildcard = IPv6Address(0) if self.family == socket.AF_INET6 else IPv4Address(0)
            host = str(wildcard)
        sock = await self._bound_socket(host)
        self._source_guard = guard_for(self.drop_sources, sock.getsockname(), self.stats, self.name)
        try:
            transport, protocol = await self.loop.create_datagram_endpoint(
                lambda: _Endpoint(self), sock=sock
            )
        except BaseException:
            sock.close()
            if self._source_guard is not None:
                self._source_guard.close()
            raise
        # libuv (uvloop) sets SO_REUSEADDR on a socket it adopts; on UDP that would
        # let another process bind our port and steal datagrams (bpo-37228).
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        self._transport = transport
        protocol.read_in_bursts(self.loop, sock)
        self.handler.server = self
        self.handler.transport = transport
        self.handler.setup()

    async def _bound_socket(self, host: str) -> socket.socket:
        # We bind the socket ourselves rather than let create_datagram_endpoint()
        # do it: then a busy port fails the same way on every loop (uvloop leaks its
        # transport and hides the errno on __cause__ otherwise), and socket options
        # are set before the first datagram can arrive.
        infos = await self.loop.getaddrinfo(
            host, self.port, family=self.family, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
        )
        family, type_, proto, _, address = infos[0]
        sock = socket.socket(family, type_, proto)
        try:
            if self.reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if self.allow_broadcast:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            if self.receive_buffer is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
            sock.bind(address)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _bind_target(self) -> str:
        return f"udp {format_peer((self._host or '*', self.port))}"

    @property
    def addresses(self) -> list[Any]:
        """The bound ``(host, port)``, as a one-element list."""
        if self._transport is None:
            return []
        return [self._transport.get_extra_info("sockname")[:2]]

    @property
    def socket(self) -> socket.socket:
        """The bound socket (to read its options); do not read from or close it."""
        if self._transport is None:
            raise StateError(f"{self.name} is not started")
        sock: socket.socket = self._transport.get_extra_info("socket")
        return sock

    def sendto(self, data: bytes, addr: Any) -> None:
        """Send a datagram from the server's socket."""
        if self._transport is None or self._transport.is_closing():
            raise StateError(f"{self.name} is not serving")
        self.stats.datagrams_out += 1
        self.stats.bytes_out += len(data)
        self._transport.sendto(data, addr)

    def _endpoint_lost(self) -> None:
        if self._lost is not None:
            self._lost.set()

    async def _shutdown(self, grace: float) -> None:
        assert self._transport is not None
        assert self._lost is not None
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5.0)
        self._transport.close()
        await self._lost.wait()
        if self._source_guard is not None:
            self._source_guard.close()
        try:
            self.handler.finish()
        except Exception as exc:
            logger.error("%s.finish() failed: %r", type(self.handler).__name__, exc, exc_info=exc)
        self._mark_closed()
