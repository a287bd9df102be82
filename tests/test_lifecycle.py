"""One lifecycle for every endpoint: start / close (sync) / wait_closed / stop / async with."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Self

import pytest

from asyncnet import (
    DatagramClient,
    DatagramHandler,
    DatagramServer,
    FramedClient,
    LineClient,
    LineHandler,
    Servable,
    StreamServer,
    run_servers,
    tcp_server,
    udp_server,
)


class Upper(LineHandler):
    async def handle_line(self, line: str) -> str:
        return line.upper()


class Echo(DatagramHandler):
    async def handle(self, data: bytes, addr: object) -> bytes:
        return data


ENDPOINTS = [StreamServer, DatagramServer, LineClient, FramedClient, DatagramClient]


@pytest.mark.parametrize("cls", ENDPOINTS, ids=lambda c: c.__name__)
def test_every_endpoint_has_the_same_method_names_and_sync_async_split(cls: type) -> None:
    for name in ("start", "wait_closed", "stop", "__aenter__", "__aexit__"):
        assert inspect.iscoroutinefunction(getattr(cls, name)), f"{cls.__name__}.{name}"
    assert not inspect.iscoroutinefunction(cls.close), f"{cls.__name__}.close must be sync"
    assert "grace" in inspect.signature(cls.stop).parameters


def test_servers_are_servable() -> None:
    assert isinstance(tcp_server(Upper), Servable)
    assert isinstance(udp_server(Echo), Servable)


async def test_stream_client_close_then_wait_closed() -> None:
    async with tcp_server(Upper) as server:
        client = await LineClient.connect(*server.address, timeout=5)
        assert await client.request("a") == "A"
        assert client.close() is None  # begins closing, does not wait
        assert client.writer.is_closing()
        async with asyncio.timeout(5):
            await client.wait_closed()
            await client.stop()  # stopping a closed client is harmless


async def test_datagram_client_close_then_wait_closed() -> None:
    async with udp_server(Echo) as server:
        async with await DatagramClient.connect(*server.address) as client:
            assert await client.request(b"x") == b"x"
        assert client.transport.is_closing()
        async with asyncio.timeout(5):
            await client.wait_closed()  # already closed by the block: returns at once


class Recorder:
    """A Servable that is not a server: it only records what run_servers does to it."""

    def __init__(self, name: str, log: list[str], *, ends_itself: bool = False) -> None:
        self.name = name
        self.log = log
        self.ends_itself = ends_itself
        self._closed: asyncio.Event | None = None

    async def start(self) -> Self:
        self._closed = asyncio.Event()
        self.log.append(f"start {self.name}")
        return self

    async def serve_forever(self) -> None:
        assert self._closed is not None
        if not self.ends_itself:
            await self._closed.wait()

    async def stop(self, grace: float | None = None) -> None:
        assert self._closed is not None
        self._closed.set()
        self.log.append(f"stop {self.name}")


def test_run_servers_takes_any_servable_and_stops_in_reverse_order() -> None:
    log: list[str] = []
    seen: list[Any] = []
    first, second = Recorder("a", log), Recorder("b", log)

    async def session() -> None:
        log.append("until")

    status = run_servers(first, second, ready=seen.extend, until=session, use_uvloop=False)
    assert status == 0
    assert seen == [first, second]
    assert log == ["start a", "start b", "until", "stop b", "stop a"]


def test_run_servers_ends_when_a_servable_stops_serving_by_itself() -> None:
    """No signal and no until: a serve_forever that returns ends the run (bounded by the test)."""
    log: list[str] = []
    status = run_servers(
        tcp_server(Upper), Recorder("quitter", log, ends_itself=True), use_uvloop=False
    )
    assert status == 0
    assert log == ["start quitter", "stop quitter"]
