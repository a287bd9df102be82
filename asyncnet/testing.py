"""Test your handlers the way asyncnet tests its own: real sockets, loopback, port 0.

* Servers are the test fixtures: ``tcp_server``/``udp_server``/``unix_server``
  default to 127.0.0.1 port 0, ``async with`` starts and stops them, and
  ``server.address`` is the real address.  ``server.events`` lets a test wait for
  "connection opened/closed" or "datagram handled" instead of polling.
* :func:`loopback_only` makes any connect or send to a non-loopback address fail at
  once with ``PermissionError``, so a test can never put traffic on a real network.
* :func:`drive` runs a handler on a :class:`FakeTransport`, no sockets at all:
  ``conn = drive(Upper)``, ``conn.feed(b"hi\\n")``, ``await conn.replies()``, which
  waits until the connection is *quiescent* (nothing left to do until more input
  arrives); with ``drive(Upper, clock=FakeClock())`` its timeouts and linger pass when
  the test calls ``clock.advance(seconds)``, not in real time.
* The local mail pair for mail code: :func:`asyncnet.mail.local_mail_server`.
* :class:`LoopExceptionCollector` records what the loop's exception handler
  receives ("Task exception was never retrieved"...) so a test can assert there
  was none.

Typical use with pytest-asyncio::

    async def test_upper():
        async with tcp_server(Upper) as server:
            async with await LineClient.connect(*server.address) as client:
                assert await client.request("abc") == "ABC"
            await server.events.wait_closed(1, timeout=5)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

from ._loopback import is_loopback_host
from ._memory import DrivenConnection, FakeClock, FakeTimer, FakeTransport, drive

__all__ = [
    "DrivenConnection",
    "FakeClock",
    "FakeTimer",
    "FakeTransport",
    "LoopExceptionCollector",
    "NonLoopbackTraffic",
    "can_bind_ipv6",
    "drive",
    "is_loopback",
    "loopback_only",
]


def can_bind_ipv6() -> bool:
    """True when this machine has an IPv6 loopback to bind (``::1``)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def is_loopback(address: Any) -> bool:
    """True for a loopback address (127.0.0.0/8, ::1, ``localhost``) or a Unix path."""
    if not isinstance(address, tuple):
        return True  # AF_UNIX path or abstract name: never leaves the machine
    # A name other than localhost would need DNS: refused.
    return is_loopback_host(address[0])


class NonLoopbackTraffic(PermissionError):
    """Raised by :func:`loopback_only` instead of letting traffic leave the machine."""


@contextlib.contextmanager
def loopback_only() -> Iterator[list[str]]:
    """Refuse connects and sends to anything but loopback while the block runs.

    Patches ``socket.socket.connect``/``connect_ex``/``sendto``/``sendmsg`` for
    AF_INET and AF_INET6.  Yields a list that records every refused attempt, so a
    test (or a fixture) can fail even when the code under test swallowed the error.
    """
    refused: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_sendto = socket.socket.sendto
    real_sendmsg = socket.socket.sendmsg

    def check(sock: socket.socket, address: Any, what: str) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address):
            refused.append(f"{what} to {address!r}")
            raise NonLoopbackTraffic(f"loopback_only: {what} to {address!r} refused")

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address, "connect")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address, "connect")
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        check(self, args[-1], "sendto")
        return real_sendto(self, data, *args)

    def sendmsg(self: socket.socket, buffers: Any, *args: Any) -> int:
        if len(args) >= 3 and args[2] is not None:
            check(self, args[2], "sendmsg")
        return real_sendmsg(self, buffers, *args)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    socket.socket.sendto = sendto  # type: ignore[method-assign,assignment]
    socket.socket.sendmsg = sendmsg  # type: ignore[method-assign,assignment]
    try:
        yield refused
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]
        socket.socket.sendto = real_sendto  # type: ignore[method-assign]
        socket.socket.sendmsg = real_sendmsg  # type: ignore[method-assign]


class LoopExceptionCollector:
    """Install on a loop to collect what its exception handler is given."""

    def __init__(self) -> None:
        self.contexts: list[dict[str, Any]] = []
        self._previous: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start collecting on ``loop`` (remembers the previous handler)."""
        self._loop = loop
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(self._collect)

    def uninstall(self) -> None:
        """Put the previous handler back."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.set_exception_handler(self._previous)

    def _collect(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.contexts.append(context)
        loop.default_exception_handler(context)

    @property
    def messages(self) -> list[str]:
        """One line per collected context: its message and exception."""
        return [f"{c.get('message')}: {c.get('exception')!r}" for c in self.contexts]
