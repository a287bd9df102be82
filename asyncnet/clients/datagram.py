"""A datagram request client: send, wait for the reply, retry with backoff, give up."""

from __future__ import annotations

import asyncio
import collections
import socket
from types import TracebackType
from typing import Any, Self

from ..errors import NoResponse
from ._errors import network_errors

__all__ = ["DatagramClient"]


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self, size: int) -> None:
        self.datagrams: collections.deque[bytes] = collections.deque(maxlen=size)
        self.refused = 0
        self.waiter: asyncio.Future[None] | None = None

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


class DatagramClient:
    """Request/reply over UDP, bounded: ``timeout`` per attempt, ``retries`` more tries.

    The classic client blocks forever when its datagram or the reply is lost; this
    one waits ``timeout`` seconds, retries with the wait multiplied by ``backoff``
    each time, and raises :class:`~asyncnet.errors.NoResponse` when no reply came.
    UDP has no request ids: a late reply to an earlier attempt is accepted as the
    reply, and stale datagrams are discarded before each new request.
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
    ) -> None:
        self.transport = transport
        self._inbox = inbox
        self.peer = peer
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

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
    ) -> Self:
        """Create an endpoint bound to an ephemeral port and aimed at ``host:port``."""
        if timeout <= 0 or retries < 0 or backoff < 1:
            raise ValueError("need timeout > 0, retries >= 0 and backoff >= 1")
        peer = (host, port)
        loop = asyncio.get_running_loop()
        async with network_errors(peer, "connect", timeout):
            transport, inbox = await loop.create_datagram_endpoint(
                lambda: _Inbox(64),
                remote_addr=peer,
                family=family,
                allow_broadcast=allow_broadcast or None,
            )
        return cls(transport, inbox, peer, timeout=timeout, retries=retries, backoff=backoff)

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
            if inbox.datagrams:
                return inbox.datagrams.popleft()
            if attempt + 1 < attempts:
                wait *= self.backoff
        error = NoResponse(self.peer, attempts, self.timeout)
        if inbox.refused:
            error.add_note("the server's port answered 'port unreachable': nothing listens there")
        raise error

    def close(self) -> None:
        """Close the endpoint."""
        self.transport.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
