"""The one place where low-level OSErrors and timeouts become asyncnet errors."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..errors import AsyncNetError, NetworkError, OperationTimeout, format_peer

__all__ = ["network_errors"]


@asynccontextmanager
async def network_errors(
    peer: Any, phase: str, timeout: float | None, *, subject: str | None = None
) -> AsyncIterator[None]:
    """Bound the block by ``timeout`` and translate failures, naming peer and phase.

    ``TimeoutError`` becomes :class:`OperationTimeout`; any other ``OSError`` becomes
    :class:`NetworkError` (still an ``OSError``), chained with ``from``, whose message
    reads "<subject> failed: <reason>" (``subject`` defaults to "<phase> with <peer>").
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
        # failed" vs "Connection refused"): prefer the OS's text for the errno.
        # Resolver errors carry EAI_*/h_errno codes, not errnos: keep their own text.
        if exc.errno and not isinstance(exc, (socket.gaierror, socket.herror)):
            reason = os.strerror(exc.errno)
        else:
            reason = exc.strerror or str(exc) or type(exc).__name__
        what = subject if subject is not None else f"{phase} with {format_peer(peer)}"
        raise NetworkError(f"{what} failed: {reason}", peer, phase) from exc
