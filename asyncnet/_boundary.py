"""The one place where low-level OSErrors and timeouts become asyncnet errors.

Like httpcore's ``map_exceptions``: code that touches the OS (connect, send, read,
bind, resolve) runs inside :func:`network_errors` (async, with a deadline) or
:func:`os_errors` (sync), or calls :func:`translate_os_error` itself, and callers
only ever see the tree in :mod:`asyncnet.errors`:

* ``TimeoutError`` -> :class:`~asyncnet.errors.OperationTimeout`;
* ``EADDRINUSE`` -> :class:`~asyncnet.errors.AddressInUse`;
* any other ``OSError`` (``ssl.SSLError``, ``socket.gaierror`` included) ->
  :class:`~asyncnet.errors.NetworkError`, still an ``OSError`` with its ``errno``.

Each is chained to the original with ``raise ... from``.
"""

from __future__ import annotations

import asyncio
import errno as errno_module
import os
import socket
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any, cast

from .errors import AddressInUse, AsyncNetError, NetworkError, OperationTimeout, format_peer

__all__ = ["network_errors", "os_errors", "os_reason", "translate_os_error"]


def os_reason(exc: OSError) -> str:
    """The words for ``exc`` without the subject: the OS's text for its errno if it has one."""
    if isinstance(exc, NetworkError):
        return exc.reason
    if isinstance(exc, ssl.SSLError):
        # An SSL error's errno is an OpenSSL code, not an errno.
        return exc.reason or exc.strerror or str(exc)
    # uvloop and the stdlib word some failures differently ("Connect call failed"
    # vs "Connection refused"): prefer the OS's text for the errno.  Resolver
    # errors carry EAI_*/h_errno codes, not errnos: keep their own text.  (aiohttp
    # re-raises a gaierror as a plain OSError with its negative EAI_* code.)
    if (code := _errno_of(exc)) is not None:
        return os.strerror(code)
    return exc.strerror or str(exc) or type(exc).__name__


def _errno_of(exc: OSError) -> int | None:
    """``exc.errno`` if it is an errno, ``None`` if absent or an OpenSSL or resolver
    (EAI_*) code."""
    code = exc.errno
    if not isinstance(code, int) or code <= 0:
        return None
    if isinstance(exc, (ssl.SSLError, socket.gaierror, socket.herror)):
        return None
    return code


def translate_os_error(
    exc: OSError,
    *,
    subject: str,
    peer: Any = None,
    phase: str | None = None,
    timeout: float | None = None,
    reasons: Mapping[int, str] | None = None,
) -> AsyncNetError:
    """Return the asyncnet error for ``exc``; raise it with ``raise ... from exc``.

    The message reads "<subject>: <reason>"; ``reasons`` maps an errno to better
    words for this caller (a hint of what to do).  A :class:`NetworkError` is
    given the new subject (an outer layer knows better what was being done); any
    other asyncnet error is returned unchanged.
    """
    if isinstance(exc, AsyncNetError) and not isinstance(exc, NetworkError):
        return exc
    if isinstance(exc, TimeoutError) and not isinstance(exc, NetworkError):
        return OperationTimeout(peer, phase or subject, timeout)
    code = _errno_of(exc)
    reason = (reasons or {}).get(code or 0) or os_reason(exc)
    cls = AddressInUse if code == errno_module.EADDRINUSE else NetworkError
    return cls(f"{subject}: {reason}", peer, phase, errno=code, reason=reason)


@contextmanager
def os_errors(
    *,
    subject: str,
    peer: Any = None,
    phase: str | None = None,
    reasons: Mapping[int, str] | None = None,
) -> Iterator[None]:
    """Translate ``OSError`` raised in the block (sync code paths: bind, socket setup)."""
    try:
        yield
    except OSError as exc:
        error = translate_os_error(exc, subject=subject, peer=peer, phase=phase, reasons=reasons)
        if error is cast(object, exc):  # an asyncnet error already
            raise
        raise error from exc


@asynccontextmanager
async def network_errors(
    peer: Any, phase: str, timeout: float | None, *, subject: str | None = None
) -> AsyncIterator[None]:
    """Bound the block by ``timeout`` and translate failures, naming peer and phase.

    ``TimeoutError`` becomes :class:`OperationTimeout`; any other ``OSError`` becomes
    :class:`NetworkError` (still an ``OSError``), chained with ``from``, whose message
    reads "<subject> failed: <reason>" (``subject`` defaults to "<phase> with <peer>").
    asyncnet errors raised inside (by a nested block) pass through unchanged.
    """
    try:
        async with asyncio.timeout(timeout):
            yield
    except AsyncNetError:
        raise
    except TimeoutError as exc:
        raise OperationTimeout(peer, phase, timeout) from exc
    except OSError as exc:
        what = subject if subject is not None else f"{phase} with {format_peer(peer)}"
        raise translate_os_error(exc, subject=f"{what} failed", peer=peer, phase=phase) from exc
