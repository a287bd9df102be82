"""Per-line cost: line framing, LineConnection dispatch, datagram dispatch, vs bare."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from asyncnet import tcp_server, udp_server
from asyncnet.demos.upper import Upper, UpperDatagram
from asyncnet.protocols import Framer, NeedData

from .conftest import CountingTransport
from .servers import BareUpper, BareUpperDatagram

LINE = b"x" * 63 + b"\n"
TEN_LINES = LINE * 10


def _feed_all(feed: Callable[[bytes], None], chunk: bytes, times: int) -> None:
    for _ in range(times):
        feed(chunk)


@pytest.mark.benchmark(group="framing")
def test_framer_one_line_per_feed(benchmark: Any) -> None:
    framer = Framer(b"\n")

    def run() -> int:
        n = 0
        for _ in range(1000):
            framer.feed(LINE)
            while not isinstance(framer.next_frame(), NeedData):
                n += 1
        return n

    assert benchmark(run) == 1000


@pytest.mark.benchmark(group="framing")
def test_framer_ten_lines_per_feed(benchmark: Any) -> None:
    framer = Framer(b"\n")

    def run() -> int:
        n = 0
        for _ in range(100):
            framer.feed(TEN_LINES)
            while not isinstance(framer.next_frame(), NeedData):
                n += 1
        return n

    assert benchmark(run) == 1000


@pytest.fixture
def asyncnet_line(loop: asyncio.AbstractEventLoop) -> Any:
    """A LineConnection of a real (started, idle) server, on a counting transport."""
    server = tcp_server(Upper)
    loop.run_until_complete(server.start())
    connection = server._make_connection()  # the protocol asyncio would create
    transport = CountingTransport()

    async def made() -> None:  # asyncio calls it inside the loop: timeouts start there
        connection.connection_made(transport)

    async def lost() -> None:
        connection.connection_lost(None)

    loop.run_until_complete(made())
    yield connection, transport
    loop.run_until_complete(lost())
    loop.run_until_complete(server.stop())


@pytest.fixture
def bare_line() -> Any:
    protocol = BareUpper()
    transport = CountingTransport()
    protocol.connection_made(transport)
    return protocol, transport


@pytest.mark.benchmark(group="line path: one 64-byte line per read")
@pytest.mark.parametrize("kind", ["asyncnet", "bare"])
def test_one_line_per_read(benchmark: Any, kind: str, request: pytest.FixtureRequest) -> None:
    protocol, transport = request.getfixturevalue(f"{kind}_line")
    benchmark(_feed_all, protocol.data_received, LINE, 1000)
    assert transport.written > 0


@pytest.mark.benchmark(group="line path: ten lines per read")
@pytest.mark.parametrize("kind", ["asyncnet", "bare"])
def test_ten_lines_per_read(benchmark: Any, kind: str, request: pytest.FixtureRequest) -> None:
    protocol, transport = request.getfixturevalue(f"{kind}_line")
    before = transport.written
    benchmark(_feed_all, protocol.data_received, TEN_LINES, 100)
    assert transport.written > before


@pytest.mark.benchmark(group="line path: a line split over two reads")
@pytest.mark.parametrize("kind", ["asyncnet", "bare"])
def test_split_line(benchmark: Any, kind: str, request: pytest.FixtureRequest) -> None:
    protocol, transport = request.getfixturevalue(f"{kind}_line")

    def run() -> None:
        for _ in range(1000):
            protocol.data_received(LINE[:20])
            protocol.data_received(LINE[20:])

    before = transport.written
    benchmark(run)
    assert transport.written > before


@pytest.fixture
def asyncnet_datagram(loop: asyncio.AbstractEventLoop) -> Any:
    server = udp_server(UpperDatagram)
    loop.run_until_complete(server.start())
    endpoint = server._transport.get_protocol()  # type: ignore[union-attr]
    transport = CountingTransport()
    endpoint.connection_made(transport)
    yield endpoint, transport
    loop.run_until_complete(server.stop())


@pytest.fixture
def bare_datagram() -> Any:
    protocol = BareUpperDatagram()
    transport = CountingTransport()
    protocol.connection_made(transport)
    return protocol, transport


@pytest.mark.benchmark(group="datagram dispatch")
@pytest.mark.parametrize("kind", ["asyncnet", "bare"])
def test_datagram(benchmark: Any, kind: str, request: pytest.FixtureRequest) -> None:
    protocol, transport = request.getfixturevalue(f"{kind}_datagram")
    addr = ("127.0.0.1", 40000)

    def run() -> None:
        received = protocol.datagram_received
        for _ in range(1000):
            received(LINE, addr)

    before = transport.written
    benchmark(run)
    assert transport.written > before
