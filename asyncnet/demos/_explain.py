"""The demos' one-line messages for expected failures: what went wrong, what to do.

:func:`explain` turns an exception a demo expects (port in use, connection refused,
unknown host, timeout, missing file, a bad setting) into one line that names the
flag to change; for anything else (a bug) it returns ``None`` and the demo re-raises.
"""

from __future__ import annotations

import errno
import re
import socket

from ..errors import AsyncNetError, ConfigurationError, format_peer

__all__ = ["explain"]


def _leaf(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-member exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _errno(exc: BaseException) -> int | None:
    """The OS error number of ``exc`` or of what it was raised from (duck-typed)."""
    for link in _chain(exc):
        number = getattr(link, "errno", None)
        if isinstance(number, int) and not isinstance(link, socket.gaierror):
            return number
    return None


def _text(exc: BaseException) -> str:
    """``str(exc)`` without the ``[Errno 98] `` prefix the OS layer adds."""
    return re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)) or type(exc).__name__


def _bind_address(exc: BaseException) -> str | None:
    match = re.search(r"\('([^']*)', (\d+)\)", str(exc))
    return format_peer((match[1], int(match[2]))) if match else None


def _flag_words(text: str) -> str:
    """The library's keyword arguments in their command-line spelling.

    ``all_interfaces=True`` -> ``--all-interfaces``; a leading ``bufsize must`` ->
    ``--bufsize must``: a CLI user typed flags, never keyword arguments.
    """
    text = re.sub(r"\b([a-z][a-z_]*)=True\b", lambda m: "--" + m[1].replace("_", "-"), text)
    return re.sub(r"^([a-z][a-z_]*) must\b", lambda m: f"--{m[1].replace('_', '-')} must", text)


def explain(exc: BaseException, *, host: str | None = None) -> str | None:
    """One line saying what went wrong and what to do; ``None`` for a bug (re-raise).

    ``host`` is the ``--host`` given, named when it cannot be resolved.
    """
    exc = _leaf(exc)
    if not isinstance(exc, (AsyncNetError, OSError)):
        return None
    line = _explain(exc, host)
    return _flag_words(line) if isinstance(exc, AsyncNetError) else line


def _explain(exc: BaseException, host: str | None) -> str:
    # Imported here, not at the top: a demo's --help does not load the TLS module.
    import ssl

    if isinstance(exc, ConfigurationError):
        return str(exc)
    if any(isinstance(link, ssl.SSLCertVerificationError) for link in _chain(exc)):
        # The server is running (it sent a certificate): a connection hint would mislead.
        return (
            f"{_text(exc)}: a certificate problem, not a connection one; check that the "
            "server's certificate is valid for that name and issued by a CA you trust"
        )
    if getattr(exc, "phase", None) == "proxy":  # the web client's ProxyError
        # The forward proxy failed, not the target: the advice is about the proxy.
        if _errno(exc) == errno.ECONNREFUSED:
            return f"{_text(exc)}: is the proxy running? check --proxy"
        return f"{_text(exc)}; check --proxy"
    number = _errno(exc)
    if number == errno.EADDRINUSE:
        address = _bind_address(exc)  # asyncio's own wording: "... on address ('h', p) ..."
        what = f"cannot listen on {address}" if address else _text(exc)
        if "in use" not in what:
            what += ": the port is already in use"
        return f"{what}; stop the other program or choose another --port (0 = any free port)"
    if number == errno.EACCES and "bind" in str(exc):
        return f"{_text(exc)}: ports below 1024 need privileges; choose --port 1024 or above"
    if number == errno.EADDRNOTAVAIL:
        return f"{_text(exc)}: that address is not on this machine; check --host"
    if any(isinstance(link, (socket.gaierror, socket.herror)) for link in _chain(exc)):
        if isinstance(exc, AsyncNetError):  # its message names the host already
            return f"{_text(exc)}; check --host"
        name = f"host {host!r}" if host else "the host name"
        return f"cannot resolve {name} ({_text(exc)}); check --host"
    if number == errno.ECONNREFUSED:
        return f"{_text(exc)}: is the server running? check --host and --port"
    if isinstance(exc, TimeoutError):
        what = _text(exc) if str(exc) else "timed out"
        return f"{what}: is the peer running? try a longer --timeout"
    if isinstance(exc, FileNotFoundError) and exc.filename is not None:
        return f"{exc.filename}: no such file or directory; check the path"
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return _text(exc)
