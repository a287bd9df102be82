"""The shipped pytest plugin's fixtures, used from this suite."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from asyncnet import DatagramHandler, DatagramServer, LineHandler, StreamServer
from asyncnet.pytest_plugin import ServerFactory


class Echo(LineHandler):
    def handle_line(self, line: str) -> str:
        return line


class Shout(DatagramHandler):
    def handle(self, data: bytes, addr: Any) -> bytes:
        return data.upper()


async def test_a_stream_handler_gets_a_tcp_server_on_loopback_port_0(
    asyncnet_server: ServerFactory,
) -> None:
    server = await asyncnet_server(Echo, line_timeout=1)
    assert isinstance(server, StreamServer)
    assert server.is_serving
    assert server.address[0] == "127.0.0.1"
    assert server.address[1] != 0
    assert server.line_timeout == 1


async def test_a_datagram_handler_class_or_instance_gets_udp(
    asyncnet_server: ServerFactory,
) -> None:
    by_class = await asyncnet_server(Shout)
    by_instance = await asyncnet_server(Shout())
    assert isinstance(by_class, DatagramServer)
    assert isinstance(by_instance, DatagramServer)
    assert by_class.address != by_instance.address


async def test_stop_all_stops_every_server_newest_first() -> None:
    """What the fixture's teardown does."""
    factory = ServerFactory()
    first = await factory.tcp(Echo)
    second = await factory.udp(Shout)
    await factory.stop_all()
    assert not first.is_serving
    assert not second.is_serving
    assert factory.servers == []


def test_loopback_only_fixture_records_a_refusal(loopback_only: list[str]) -> None:
    with socket.socket() as sock, pytest.raises(PermissionError):
        sock.connect(("192.0.2.1", 9))  # TEST-NET-1: refused before any packet leaves
    assert loopback_only == ["connect to ('192.0.2.1', 9)"]
    loopback_only.clear()  # expected here; the fixture fails the test otherwise
