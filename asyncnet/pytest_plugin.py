"""pytest fixtures for testing asyncnet handlers; loaded automatically (entry point ``pytest11``).

Installing asyncnet with pytest and pytest-asyncio present (``pip install
'asyncnet[test]'``) is all it takes; nothing to import or register::

    import pytest
    from asyncnet import LineClient
    from asyncnet.pytest_plugin import ServerFactory

    @pytest.mark.asyncio
    async def test_upper(asyncnet_server: ServerFactory) -> None:
        server = await asyncnet_server(Upper)   # 127.0.0.1, a free port, this test's loop
        async with await LineClient.connect(*server.address, timeout=5) as client:
            assert await client.request("abc") == "ABC"

Fixtures:

* ``asyncnet_server``: a :class:`ServerFactory`; each server it starts listens on
  127.0.0.1 port 0 inside the running test's loop and is stopped at teardown.
* ``asyncnet_drive``: :func:`asyncnet.testing.drive` for this test -- a handler on a
  fake transport, no sockets (``conn = asyncnet_drive(Upper)``, ``conn.feed(...)``,
  ``await conn.replies()``; ``clock=FakeClock()`` for deadlines that cost no real
  time); connections still open at teardown are ended and their handlers'
  ``finish()`` has run.
* ``loopback_only``: while the test runs, any connect or send to a non-loopback
  address fails at once (:func:`asyncnet.testing.loopback_only`), and the test
  fails even if the code under test swallowed that error.  The ini option
  ``asyncnet_loopback_only = true`` applies it to every test.

Async tests need pytest-asyncio: mark them ``@pytest.mark.asyncio`` (or set
``asyncio_mode = "auto"`` in your pytest configuration).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import pytest

try:
    import pytest_asyncio
except ImportError:  # pytest runs every installed plugin: never break a project without it
    pytest_asyncio = None  # type: ignore[assignment]

from . import tcp_server, udp_server
from ._compat import set_ini_default
from .servers import BaseHandler, DatagramHandler, DatagramServer, ServerBase, StreamServer
from .testing import DrivenConnection, drive
from .testing import loopback_only as _loopback_only

__all__ = ["DriveFactory", "ServerFactory"]

_LOOPBACK_INI = "asyncnet_loopback_only"

S = TypeVar("S", bound=ServerBase)


class ServerFactory:
    """Starts servers on 127.0.0.1 port 0 for one test; the fixture stops them all."""

    def __init__(self) -> None:
        self.servers: list[ServerBase] = []

    async def __call__(
        self,
        handler: Callable[[], BaseHandler] | Callable[[], DatagramHandler] | DatagramHandler,
        **options: Any,
    ) -> Any:
        """A TCP server for a stream handler, a UDP one for a :class:`DatagramHandler`.

        Returns the started server (``server.address`` is the real address);
        ``options`` are the server's keyword options (``line_timeout=``...).
        """
        datagram = isinstance(handler, DatagramHandler) or (
            isinstance(handler, type) and issubclass(handler, DatagramHandler)
        )
        if datagram:
            return await self.udp(handler, **options)  # type: ignore[arg-type]
        return await self.tcp(handler, **options)  # type: ignore[arg-type]

    async def tcp(self, handler: Callable[[], BaseHandler], **options: Any) -> StreamServer:
        """Start a TCP :class:`~asyncnet.StreamServer` for ``handler``."""
        options.setdefault("host", "127.0.0.1")
        options.setdefault("port", 0)
        return await self._start(tcp_server(handler, **options))

    async def udp(
        self, handler: Callable[[], DatagramHandler] | DatagramHandler, **options: Any
    ) -> DatagramServer:
        """Start a UDP :class:`~asyncnet.DatagramServer` for ``handler``."""
        options.setdefault("host", "127.0.0.1")
        options.setdefault("port", 0)
        return await self._start(udp_server(handler, **options))

    async def _start(self, server: S) -> S:
        await server.start()
        self.servers.append(server)
        return server

    async def stop_all(self) -> None:
        """Stop every server started here, newest first."""
        while self.servers:
            await self.servers.pop().stop()


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def asyncnet_server() -> AsyncIterator[ServerFactory]:
        """Start servers on 127.0.0.1 port 0 in the test's loop; stopped at teardown."""
        factory = ServerFactory()
        try:
            yield factory
        finally:
            await factory.stop_all()

else:

    @pytest.fixture
    def asyncnet_server() -> ServerFactory:
        """Unavailable: the servers need the test's event loop, which pytest-asyncio runs."""
        pytest.fail(
            "the asyncnet_server fixture needs pytest-asyncio: pip install 'asyncnet[test]'"
        )


class DriveFactory:
    """:func:`asyncnet.testing.drive` that remembers its connections for teardown."""

    def __init__(self) -> None:
        self.connections: list[DrivenConnection] = []

    def __call__(self, handler: Callable[[], BaseHandler], **options: Any) -> DrivenConnection:
        """Drive ``handler`` on a fake transport (``options``: :func:`~asyncnet.testing.drive`'s,
        the server's options and ``clock``)."""
        conn = drive(handler, **options)
        self.connections.append(conn)
        return conn

    async def close_all(self) -> None:
        """End every connection still open (end of input) and wait for its handler."""
        for conn in self.connections:
            if not conn.closed:
                conn.feed_eof()
                await conn.wait_closed()


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def asyncnet_drive() -> AsyncIterator[DriveFactory]:
        """Drive handlers in memory (no sockets) in the test's loop; ended at teardown."""
        factory = DriveFactory()
        try:
            yield factory
        finally:
            await factory.close_all()

else:

    @pytest.fixture
    def asyncnet_drive() -> DriveFactory:
        """Unavailable: driven handlers need the test's event loop (pytest-asyncio)."""
        pytest.fail("the asyncnet_drive fixture needs pytest-asyncio: pip install 'asyncnet[test]'")


@pytest.fixture
def loopback_only() -> Iterator[list[str]]:
    """Refuse connects/sends to non-loopback addresses; fail the test if any was tried."""
    with _loopback_only() as refused:
        yield refused
    assert not refused, f"non-loopback traffic was attempted: {refused}"


@pytest.fixture(autouse=True)
def _asyncnet_loopback_ini(request: pytest.FixtureRequest) -> None:
    """Apply ``loopback_only`` to every test when the ini option says so."""
    if request.config.getini(_LOOPBACK_INI):
        request.getfixturevalue("loopback_only")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Choose pytest-asyncio's fixture loop scope ("function") when the project has not.

    Otherwise pytest-asyncio warns at start-up in every project that has not
    configured it, and under ``-W error`` pytest stops with an internal error; the
    value chosen is the one pytest-asyncio announces as its future default.
    """
    if pytest_asyncio is None:
        return
    try:
        unset = config.getini("asyncio_default_fixture_loop_scope") is None
    except ValueError:  # an older pytest-asyncio without that option
        return
    if unset:
        set_ini_default(config, "asyncio_default_fixture_loop_scope", "function")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``asyncnet_loopback_only`` ini option."""
    parser.addini(
        _LOOPBACK_INI,
        type="bool",
        default=False,
        help="asyncnet: refuse non-loopback traffic in every test",
    )
