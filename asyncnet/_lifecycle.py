"""The one endpoint lifecycle: ``stop`` and ``async with`` written once.

Every endpoint (servers, clients, the creosote bucket, emitter and web view, the
mail and FTP pieces) implements ``start``, ``close`` and ``wait_closed``; this base
derives ``stop(grace)``, ``__aenter__`` and ``__aexit__`` from them.  An endpoint
whose stop really differs (a client that says QUIT first) overrides ``stop``.
:class:`Closable` is the same for objects closed synchronously in a ``with`` block.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

__all__ = ["Closable", "Endpoint"]


class Endpoint(ABC):
    """Base for endpoints: ``stop``, ``__aenter__`` and ``__aexit__`` on top of three methods."""

    __slots__ = ()

    @abstractmethod
    async def start(self) -> Self:
        """Bind or connect and begin working; return the endpoint."""

    @abstractmethod
    def close(self, grace: float | None = None) -> None:
        """Begin closing and return at once (``grace``: seconds in-flight work may take)."""

    @abstractmethod
    async def wait_closed(self) -> None:
        """Wait until the endpoint is closed."""

    async def stop(self, grace: float | None = None) -> None:
        """``close(grace)`` and ``wait_closed()`` in one call."""
        self.close(grace)
        await self.wait_closed()

    async def __aenter__(self) -> Self:
        """``start()``."""
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """``stop()``."""
        await self.stop()


class Closable(ABC):
    """Base for objects a ``with`` block closes: ``__enter__``/``__exit__`` on top of ``close``."""

    __slots__ = ()

    @abstractmethod
    def close(self) -> None:
        """Release what the object holds (sync)."""

    def __enter__(self) -> Self:
        """Return the object itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """``close()``."""
        self.close()
