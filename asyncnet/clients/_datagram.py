"""A datagram request client: send, wait for the reply, retry with backoff, give up."""

from __future__ import annotations

import asyncio
import collections
import errno
import socket
from typing import Any, Self

from .._boundary import network_errors, translate_os_error
from .._lifecycle import Endpoint
from ..errors import ConfigurationError, NoResponse, format_peer

__all__ = ["DatagramClient"]


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self, size: int) -> None:
        self.datagrams: collections.deque[bytes] = collections.deque(maxlen=size)
        self.refused = 0
        self.waiter: asyncio.Future[None] | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams.append(data)
        self._wake()

    def error_received(self, exc: Exception) -> None:
        # On a connected UDP socket the kernel reports ICMP port unreachable as
        # ECONNREFUSED on a later call: remember it; the retry loop decides.
        if isinstance(exc, ConnectionRefusedError):
            self.refused += 1
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self._wake()


class DatagramClient(Endpoint):
    """Request/reply over UDP, bounded: ``timeout`` per attempt, ``retries`` more tries.

    The classic client blocks forever when its datagram or the reply is lost; this
    one waits ``timeout`` seconds, retries with the wait multiplied by ``backoff``
    each time, and raises :class:`~asyncnet.errors.NoResponse` when no reply came.
    UDP has no request ids: a late reply to an earlier attempt is accepted as the
    reply, and stale datagrams are discarded before each new request.

    An ICMP "port unreachable" (nothing listens at ``host:port``) ends the request
    at once with :class:`~asyncnet.errors.NetworkError` (``errno.ECONNREFUSED``);
    with ``retry_unreachable=True`` the client keeps trying instead (a server that
    is about to start), and the refusal is noted on the final ``NoResponse``.
    """

    def __init__(
        self,
        transport: asyncio.DatagramTransport,
        inbox: _Inbox,
        peer: Any,
        *,
        timeout: float,
        retries: int,
        backoff: float,
        retry_unreachable: bool = False,
    ) -> None:
        self.transport = transport
        self._inbox = inbox
        self.peer = peer
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.retry_unreachable = retry_unreachable

    @classmethod
    async def connect(
        cls,
        host: str = "127.0.0.1",
        port: int = 9999,
        *,
        timeout: float = 1.0,
        retries: int = 2,
        backoff: float = 2.0,
        family: int = socket.AF_UNSPEC,
        allow_broadcast: bool = False,
        retry_unreachable: bool = False,
    ) -> Self:
        """Create an endpoint bound to an ephemeral port and aimed at ``host:port``."""
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be > 0, not {timeout!r}")
        if retries < 0:
            raise ConfigurationError(f"retries must be >= 0, not {retries!r}")
        if not backoff >= 1:
            raise ConfigurationError(f"backoff must be >= 1, not {backoff!r}")
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"port must be in 0..65535, not {port!r}")
        peer = (host, port)
        loop = asyncio.get_running_loop()
        async with network_errors(peer, "connect", timeout):
            transport, inbox = await loop.create_datagram_endpoint(
                lambda: _Inbox(64),
                remote_addr=peer,
                family=family,
                allow_broadcast=allow_broadcast or None,
            )
        return cls(
            transport,
            inbox,
            peer,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            retry_unreachable=retry_unreachable,
        )

    @property
    def local_address(self) -> Any:
        """The ephemeral ``(host, port)`` the OS gave us (the tutorial's getsockname())."""
        return self.transport.get_extra_info("sockname")

    async def request(self, data: bytes) -> bytes:
        """Send ``data`` and return the first datagram that comes back."""
        inbox = self._inbox
        inbox.datagrams.clear()
        inbox.refused = 0
        wait = self.timeout
        loop = asyncio.get_running_loop()
        attempts = self.retries + 1
        for attempt in range(attempts):
            self.transport.sendto(data)
            deadline = loop.time() + wait
            while not inbox.datagrams:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                inbox.waiter = loop.create_future()
                try:
                    async with asyncio.timeout(remaining):
                        await inbox.waiter
                except TimeoutError:
                    break
                finally:
                    inbox.waiter = None
                if inbox.refused and not inbox.datagrams and not self.retry_unreachable:
                    raise translate_os_error(
                        ConnectionRefusedError(errno.ECONNREFUSED, "port unreachable"),
                        subject=f"request to {format_peer(self.peer)} failed",
                        peer=self.peer,
                        phase="request",
                        reasons={
                            errno.ECONNREFUSED: "port unreachable: nothing listens there "
                            "(is the server running on that port?)"
                        },
                    )
            if inbox.datagrams:
                return inbox.datagrams.popleft()
            if attempt + 1 < attempts:
                wait *= self.backoff
        error = NoResponse(self.peer, attempts, self.timeout)
        if inbox.refused:
            error.add_note("the server's port answered 'port unreachable': nothing listens there")
        raise error

    # -- lifecycle (the one every endpoint has) ------------------------------------

    async def start(self) -> Self:
        """Nothing to do: :meth:`connect` returns a client that is ready; return self."""
        return self

    def close(self, grace: float | None = None) -> None:
        """Begin closing the endpoint (returns at once; nothing in flight needs ``grace``)."""
        self.transport.close()

    async def wait_closed(self) -> None:
        """Wait until the endpoint has closed (the transport's connection_lost ran)."""
        await self._inbox.closed
