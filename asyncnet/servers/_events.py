"""What a server has done so far, and a way to wait for it: tests await, never poll.

Every server has ``server.events``::

    async with tcp_server(Upper) as server:
        ...                                      # a client connects and leaves
        await server.events.wait_closed(1, timeout=5)
        assert server.stats.connections_active == 0

The counts only grow: ``opened`` and ``closed`` count connections a stream
server accepted (refused ones are not counted) and finished; ``datagrams``
counts datagrams a datagram server has finished with (replied to, answered with
nothing, failed on, or dropped).  :meth:`ServerEvents.wait_for` re-checks any
condition each time one of them changes, so a condition on ``server.stats`` that
changes together with them (a protocol error closes its connection) can be
awaited too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..errors import OperationTimeout

__all__ = ["ServerEvents"]


class ServerEvents:
    """Connection opened/closed and datagram-handled counts, each awaitable."""

    __slots__ = ("_name", "_waiters", "closed", "datagrams", "opened")

    def __init__(self, name: str = "server") -> None:
        self._name = name
        self.opened = 0
        """Connections accepted and handed to a handler."""
        self.closed = 0
        """Connections finished (whatever the reason)."""
        self.datagrams = 0
        """Datagrams finished with (reply, no reply, handler error or dropped)."""
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    @property
    def open(self) -> int:
        """Connections open right now."""
        return self.opened - self.closed

    @property
    def waiting(self) -> int:
        """Conditions being waited for right now (``wait_*()`` calls not yet woken)."""
        return len(self._waiters)  # an entry leaves when woken, timed out or cancelled

    # -- called by the servers -----------------------------------------------------

    def connection_opened(self) -> None:
        """Record an accepted connection."""
        self.opened += 1
        if self._waiters:
            self._wake()

    def connection_closed(self) -> None:
        """Record a finished connection."""
        self.closed += 1
        if self._waiters:
            self._wake()

    def datagram_handled(self) -> None:
        """Record a datagram the server has finished with."""
        self.datagrams += 1
        if self._waiters:
            self._wake()

    def _wake(self) -> None:
        still: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        for predicate, future in self._waiters:
            if future.done():
                continue
            try:
                ready = predicate()
            except Exception as exc:  # a broken condition fails its waiter, not the server
                future.set_exception(exc)
                continue
            if ready:
                future.set_result(None)
            else:
                still.append((predicate, future))
        self._waiters = still

    # -- waiting ---------------------------------------------------------------------

    async def wait_for(
        self, predicate: Callable[[], bool], *, timeout: float | None = None, what: str = ""
    ) -> None:
        """Return once ``predicate()`` is true, checked now and after every event.

        Raises :class:`~asyncnet.errors.OperationTimeout` after ``timeout`` seconds.
        """
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError as exc:
            raise OperationTimeout(
                self._name, f"waiting for {what or 'a condition'}", timeout
            ) from exc
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    async def wait_opened(self, n: int = 1, *, timeout: float | None = None) -> None:
        """Wait until ``n`` connections in all have been opened."""
        await self.wait_for(lambda: self.opened >= n, timeout=timeout, what=f"{n} connections")

    async def wait_closed(self, n: int = 1, *, timeout: float | None = None) -> None:
        """Wait until ``n`` connections in all have closed."""
        await self.wait_for(
            lambda: self.closed >= n, timeout=timeout, what=f"{n} connections to close"
        )

    async def wait_idle(self, *, timeout: float | None = None) -> None:
        """Wait until no connection is open."""
        await self.wait_for(lambda: self.open == 0, timeout=timeout, what="no open connections")

    async def wait_datagrams(self, n: int = 1, *, timeout: float | None = None) -> None:
        """Wait until ``n`` datagrams in all have been handled."""
        await self.wait_for(
            lambda: self.datagrams >= n, timeout=timeout, what=f"{n} datagrams handled"
        )
