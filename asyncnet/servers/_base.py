"""What stream and datagram servers share: lifecycle, bind checks, ``async with``."""

from __future__ import annotations

import asyncio
import errno
import logging
from typing import Any, Self

from .._boundary import translate_os_error
from .._lifecycle import Endpoint
from ..errors import StateError, format_peer
from ._events import ServerEvents
from ._stats import ServerStats
from ._validate import check_seconds

logger = logging.getLogger("asyncnet.server")


class ServerBase(Endpoint):
    """Lifecycle shared by all servers: start, close, wait_closed, serve_forever."""

    stats: ServerStats
    _loop: asyncio.AbstractEventLoop | None

    def __init__(self, *, grace: float, name: str | None) -> None:
        check_seconds("grace", grace, optional=False, zero=True)
        self.grace = grace
        self.name = name or type(self).__name__
        self.stats = ServerStats()
        self.events = ServerEvents(self.name)
        """Connections opened/closed and datagrams handled, each awaitable (tests wait on it)."""
        self._loop = None
        self._started = False
        self._closing = False
        self._closed_event: asyncio.Event | None = None
        self._shutdown_task: asyncio.Task[None] | None = None

    # -- to implement -----------------------------------------------------------

    async def _bind(self) -> None:
        raise NotImplementedError

    async def _shutdown(self, grace: float) -> None:
        raise NotImplementedError

    def _bind_target(self) -> str:
        """What the server binds, for messages: ``tcp 127.0.0.1:9999``, ``unix /path``."""
        raise NotImplementedError

    @property
    def addresses(self) -> list[Any]:
        """Every address the server is bound to (one per listening socket)."""
        raise NotImplementedError

    # -- public lifecycle ---------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the server runs on (set by :meth:`start`)."""
        if self._loop is None:
            raise StateError(f"{self.name} is not started")
        return self._loop

    @property
    def address(self) -> Any:
        """The bound address: ``(host, port)`` (real port, even when asked for 0) or a path."""
        addresses = self.addresses
        if not addresses:
            raise StateError(f"{self.name} is not listening")
        return addresses[0]

    @property
    def is_serving(self) -> bool:
        """True between a successful :meth:`start` and :meth:`close`."""
        return self._started and not self._closing

    async def start(self) -> Self:
        """Bind and start serving in the running loop; return self."""
        if self._started:
            raise StateError(f"{self.name} was already started")
        self._loop = asyncio.get_running_loop()
        self._closed_event = asyncio.Event()
        try:
            await self._bind()
        except OSError as exc:
            # One line a CLI can print: AddressInUse (errno kept) or NetworkError.
            raise translate_os_error(
                exc,
                subject=f"{self.name} cannot listen on {self._bind_target()}",
                peer=self._bind_target(),
                phase="bind",
                reasons={
                    errno.EADDRINUSE: "the address is already in use (is another server running?)"
                },
            ) from exc
        self._started = True
        logger.info("%s listening on %s", self.name, ", ".join(map(format_peer, self.addresses)))
        return self

    def close(self, grace: float | None = None) -> None:
        """Stop accepting now; let handlers finish within ``grace`` s, then cancel them.

        Returns at once; await :meth:`wait_closed` for the shutdown to complete.
        """
        if not self._started or self._closing:
            return
        self._closing = True
        self._shutdown_task = self.loop.create_task(
            self._shutdown(self.grace if grace is None else grace), name=f"{self.name} shutdown"
        )

    async def wait_closed(self) -> None:
        """Wait until :meth:`close` has finished (every connection is gone)."""
        if self._shutdown_task is not None:
            await asyncio.shield(self._shutdown_task)

    async def serve_forever(self) -> None:
        """Start if needed and serve until :meth:`close` is called or the task is cancelled.

        Cancelling (Ctrl-C under :func:`asyncnet.run`) shuts the server down
        gracefully before the cancellation propagates.
        """
        if not self._started:
            await self.start()
        assert self._closed_event is not None
        try:
            await self._closed_event.wait()
        finally:
            self.close()
            await self.wait_closed()

    def _mark_closed(self) -> None:
        if self._closed_event is not None:
            self._closed_event.set()
        logger.info("%s closed", self.name)
