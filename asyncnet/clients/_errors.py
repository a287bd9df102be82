"""The one place where low-level OSErrors and timeouts become asyncnet errors."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..errors import AsyncNetError, NetworkError, OperationTimeout, format_peer

__all__ = ["network_errors"]


@asynccontextmanager
async def network_errors(peer: Any, phase: str, timeout: float | None) -> AsyncIterator[None]:
    """Bound the block by ``timeout`` and translate failures, naming peer and phase.

    ``TimeoutError`` becomes :class:`OperationTimeout`; any other ``OSError`` becomes
    :class:`NetworkError` (still an ``OSError``), chained with ``from``.
    """
    try:
        async with asyncio.timeout(timeout):
            yield
    except AsyncNetError:
        raise
    except TimeoutError as exc:
        raise OperationTimeout(peer, phase, timeout) from exc
    except OSError as exc:
        # uvloop and the stdlib word some failures differently ("Connect call
        # failed" vs "Connection refused"): prefer the OS's text for the errno
        reason = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
        raise NetworkError(
            f"{phase} with {format_peer(peer)} failed: {reason}", peer, phase
        ) from exc
