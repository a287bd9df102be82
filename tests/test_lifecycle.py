"""One lifecycle for every endpoint: start / close (sync) / wait_closed / stop / async with."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Self

import pytest

from asyncnet import (
    DatagramClient,
    DatagramServer,
    Endpoint,
    FramedClient,
    LineClient,
    Servable,
    StreamServer,
    run_servers,
    tcp_server,
    udp_server,
)
from asyncnet.creosote import Bucket, Emitter, WebView
from asyncnet.ftp import FTPClient, FTPServer
from asyncnet.mail import LocalMailServer, POP3Client, POP3Server, SMTPClient
from asyncnet.servers import HealthServer
from asyncnet.web import Client, WebServer

from .helpers import Echo, Upper

ENDPOINTS = [
    StreamServer,
    DatagramServer,
    HealthServer,
    WebServer,
    POP3Server,
    LineClient,
    FramedClient,
    DatagramClient,
    Bucket,
    Emitter,
    WebView,
    FTPClient,
    FTPServer,
    Client,
    POP3Client,
    SMTPClient,
    LocalMailServer,
]


@pytest.mark.parametrize("cls", ENDPOINTS, ids=lambda c: c.__name__)
def test_every_endpoint_has_the_same_method_names_and_sync_async_split(cls: type) -> None:
    assert issubclass(cls, Endpoint), f"{cls.__name__} does not use the one lifecycle"
    assert not inspect.isabstract(cls), f"{cls.__name__} misses a lifecycle method"
    for name in ("start", "wait_closed", "stop", "__aenter__", "__aexit__"):
        assert inspect.iscoroutinefunction(getattr(cls, name)), f"{cls.__name__}.{name}"
    assert not inspect.iscoroutinefunction(cls.close), f"{cls.__name__}.close must be sync"
    assert "grace" in inspect.signature(cls.stop).parameters
    assert "grace" in inspect.signature(cls.close).parameters


class Toy(Endpoint):
    """The smallest endpoint: what a user writes to get stop() and async with."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.closed = asyncio.Event()

    async def start(self) -> Self:
        self.log.append("start")
        return self

    def close(self, grace: float | None = None) -> None:
        self.log.append(f"close {grace}")
        asyncio.get_running_loop().call_soon(self.closed.set)

    async def wait_closed(self) -> None:
        await self.closed.wait()
        self.log.append("closed")


async def test_endpoint_derives_stop_and_async_with_from_three_methods() -> None:
    async with asyncio.timeout(5):
        async with Toy() as toy:
            assert toy.log == ["start"]
        assert toy.log == ["start", "close None", "closed"]
        again = await Toy().start()
        await again.stop(grace=1.5)
        assert again.log == ["start", "close 1.5", "closed"]


def test_an_endpoint_without_the_three_methods_cannot_be_made() -> None:
    class Half(Endpoint):
        async def start(self) -> Self:
            return self

    with pytest.raises(TypeError, match="abstract"):
        Half()  # type: ignore[abstract]


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
