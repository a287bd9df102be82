"""Every private internal of asyncio, aioftp and aiosmtpd that asyncnet relies on.

The same holds for one aiohttp internal (``AppRunner._shutdown_timeout``) and one of
pytest (``Config._inicache``).

Their public APIs leave a few gaps.  Each gap asyncnet fills with an internal is one
small function (or mixin) here, whose docstring says what it does, why no public API
does it, what it was measured to gain, and the versions it is known for.
``tests/test_compat.py`` checks the shape of every internal used here and fails, naming
the function to update, when a release changes one.  No other module of asyncnet reads,
calls or patches a private attribute of these libraries.

Known for: CPython 3.11, 3.12 and 3.13 (checked on 3.11.7, 3.12.1 and 3.13.0);
aioftp 0.28 (pyproject's floor; 0.28.3 installed); aiosmtpd 1.4.6 (the floor, and the
version installed).

This module imports nothing but the standard library at run time: the aioftp and
aiosmtpd helpers work on the objects they are given.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from asyncio import selector_events
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiosmtpd.smtp import SMTP

__all__ = [
    "AioftpControlConnection",
    "discard_stream_buffer",
    "is_accept_retry",
    "read_datagrams_in_bursts",
    "replay_late_detach",
    "set_ini_default",
    "set_shutdown_timeout",
    "smtp_streams",
    "tolerate_late_accepts",
]


# -- asyncio ---------------------------------------------------------------------------


def read_datagrams_in_bursts(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.BaseTransport,
    sock: socket.socket,
    reader: Callable[[], None],
) -> bool:
    """Make ``reader`` the callback that reads ``sock``, a datagram ``transport``'s socket.

    asyncio's datagram transport reads one datagram per event-loop iteration, so every
    datagram pays for a select() and a loop turn; a ``reader`` that calls recvfrom()
    until EAGAIN spreads that cost over whatever queued up meanwhile.  The public
    ``loop.add_reader()`` refuses a socket that belongs to a transport ("File
    descriptor ... is used by transport"), so the callback is swapped through the
    selector loop's ``_remove_reader(fd)`` and ``_add_reader(fd, callback)``; the
    transport's ``close()`` removes the socket's reader as before.

    Measured on the upper demo over UDP (2 cores, 10 datagrams in flight, median of
    5 runs): 47k replies/s and 5.2 µs of server CPU per datagram with bursts, 32k and
    8.9 µs with asyncio's own reader.

    Returns False, leaving the transport's own reader, on any other loop (uvloop reads
    in its own way) or once the transport is closing.  Known for asyncio 3.11-3.13.
    """
    if not isinstance(loop, selector_events.BaseSelectorEventLoop) or transport.is_closing():
        return False
    add = getattr(loop, "_add_reader", None)
    remove = getattr(loop, "_remove_reader", None)
    if add is None or remove is None:  # a release without them: asyncio's reader stays
        return False
    remove(sock.fileno())
    add(sock.fileno(), reader)
    return True


def discard_stream_buffer(reader: asyncio.StreamReader) -> None:
    """Drop what ``reader`` has received but nobody has read yet.

    Before a STARTTLS-style upgrade (POP3's STLS), every byte already received is
    plaintext from before the handshake: a man in the middle can append a forged
    reply after the server's go-ahead, and it would be read as if it had come over
    TLS.  StreamReader has no public way to drop its buffer (and ``start_tls()``
    keeps it), so this clears ``StreamReader._buffer`` (a bytearray).

    Measured by ``tests/test_compat.py::test_plaintext_left_in_the_stream_after_stls_is_not_read``:
    without it, a forged line that the client's last read before STLS did not take
    comes back as the reply to USER, after the handshake.  Known for asyncio 3.11-3.13.
    """
    buffer = getattr(reader, "_buffer", None)
    if isinstance(buffer, bytearray):
        buffer.clear()


def tolerate_late_accepts(server: asyncio.AbstractServer) -> None:
    """Make a closed ``asyncio.Server`` ignore a second wake-up (python/cpython#109564).

    A connection accepted just as the server closes cannot attach to it; the
    half-made transport's ``__del__`` then detaches it anyway, waking the closed
    server a second time: "TypeError: 'NoneType' object is not iterable", printed at
    some later garbage collection (seen 3 times in 200 double Ctrl-Cs on 3.13.0).
    The fix belongs in ``Server._wakeup`` (return when ``_waiters`` is already None);
    upstream has not made it (CPython's main branch still lacks the check), so this
    wraps ``_wakeup`` on each server.  Servers without ``_wakeup`` and ``_waiters``
    (uvloop's) are left alone.

    Measured by ``tests/test_shutdown.py``'s replay of that late detach (through
    :func:`replay_late_detach`), which fails with that TypeError without it on 3.13.0,
    where a transport's ``__del__`` detaches it; on 3.11 and 3.12.1 ``__del__`` does not
    detach, and the wrapper changes nothing.  Known for asyncio 3.11-3.13.
    """
    wakeup = getattr(server, "_wakeup", None)
    if wakeup is None or not hasattr(server, "_waiters"):
        return

    def wakeup_once() -> None:
        if server._waiters is not None:
            wakeup()

    server._wakeup = wakeup_once  # type: ignore[attr-defined]


def replay_late_detach(server: asyncio.AbstractServer, transport: object) -> bool:
    """Detach ``transport`` from ``server`` as a half-made transport's ``__del__`` does.

    For the test that replays python/cpython#109564 (see :func:`tolerate_late_accepts`).
    Returns False, doing nothing, where ``Server._detach`` takes no transport (3.11,
    3.12.1: a transport's ``__del__`` never detaches it there) or on a server without
    one (uvloop).  Known for asyncio 3.11-3.13.
    """
    detach = getattr(server, "_detach", None)
    if detach is None or not inspect.signature(detach).parameters:
        return False
    detach(transport)
    return True


def is_accept_retry(handle: object) -> bool:
    """True if ``handle`` is asyncio's accept retry, scheduled 1 s after an EMFILE.

    When ``accept()`` fails for want of descriptors, the selector loop stops reading
    the listening socket and calls ``_start_serving`` again a second later.  If the
    server closes in between, that retry fails on the closed socket ("Invalid file
    descriptor: -1") and the loop prints a traceback for a server that is gone; there
    is no public way to cancel the retry or to tell it from another callback's error,
    so the accept-error filter recognises it by the handle's ``_callback``.

    Measured: the out-of-descriptors test (RELIABILITY_HARDENING X7.2) printed that
    traceback in about 1 run in 10 before the filter.  Known for asyncio 3.11-3.13
    (``Handle._callback``; ``BaseSelectorEventLoop._start_serving``).
    """
    callback = getattr(handle, "_callback", None)
    return getattr(callback, "__name__", "") == "_start_serving"


# -- aioftp -----------------------------------------------------------------------------


class AioftpControlConnection:
    """Mixin for an ``aioftp.Client``: :meth:`open_control_connection` opens its control
    connection.

    aioftp's ``connect()`` opens the control connection through the client's private
    ``_open_connection(host, port)``, the one place a client can choose how: asyncnet
    bounds the reply lines (the stream limit) and records the peer before the greeting
    is read.  Its public constructor could pass the limit on to ``open_connection()``,
    but aioftp's own ``_open_connection`` also resumes the TLS session of any earlier
    control stream, so a client started again after AUTH TLS would open its new
    control connection in TLS, which no FTP server expects.  aioftp's other caller,
    ``get_passive_connection()``, is replaced by asyncnet's client; data connections
    never come through here.

    Known for aioftp 0.28 (``BaseClient._open_connection(host, port)`` returning
    ``(reader, writer)``, called by ``BaseClient.connect``).  List it first among the
    bases, before ``aioftp.Client``.
    """

    async def _open_connection(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await self.open_control_connection(host, port)

    async def open_control_connection(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open the control connection to ``host``:``port`` (subclasses say how)."""
        raise NotImplementedError


# -- aiosmtpd ---------------------------------------------------------------------------


def smtp_streams(protocol: SMTP) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The stream reader and writer of a connected aiosmtpd ``SMTP`` session.

    A replacement ``smtp_DATA`` must read the message from the same stream as
    aiosmtpd's command loop; aiosmtpd keeps it in ``SMTP._reader`` (and the writer in
    ``_writer``), set when the client connects, and offers no public access.  Without
    them the bounded DATA reader (``BoundedSMTP``, the local mail server's) cannot
    exist, and aiosmtpd's own keeps every fragment of a line without CRLF
    (``tests/test_hardening_mail.py::test_data_line_without_crlf_is_bounded_and_refused_with_552``).
    Known for aiosmtpd 1.4.x.
    """
    return protocol._reader, protocol._writer


# -- aiohttp ---------------------------------------------------------------------------


def set_shutdown_timeout(runner: object, seconds: float) -> None:
    """Change an ``aiohttp.web.AppRunner``'s shutdown timeout after it was made.

    Why: ``AppRunner(shutdown_timeout=...)`` is the only public way to set it, but the
    creosote web view's ``close(grace)`` decides the grace when it stops, long after the
    runner was made; ``AppRunner.cleanup()`` reads ``_shutdown_timeout`` when it runs.
    Gain: ``close(grace=0)`` returns at once instead of after the default 2 s.
    Known for: aiohttp 3.10 to 3.14.
    """
    setattr(runner, "_shutdown_timeout", seconds)  # noqa: B010 (a private attribute)


# -- pytest ----------------------------------------------------------------------------


def set_ini_default(config: object, name: str, value: object) -> None:
    """Answer ``config.getini(name)`` with ``value`` from now on.

    Why: the pytest plugin chooses pytest-asyncio's fixture loop scope when a project
    left it unset, or pytest-asyncio warns at start-up in every such project (an
    internal error under ``-W error``).  pytest has no public way to give another
    plugin's ini option a value; ``Config.getini()`` answers from ``_inicache`` once a
    name is in it.  Does nothing when the cache is missing (a pytest that changed it).
    Known for: pytest 7.4 to 9.
    """
    cache = getattr(config, "_inicache", None)
    if isinstance(cache, dict):
        cache[name] = value
