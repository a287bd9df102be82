"""Issue 10 item 2: UDP servers never answer a source that could start a reflection loop.

Sources cannot be forged without raw sockets, so the loops are started the way they
happen for real: a server that sends from its own socket to itself or to another
asyncnet server, and a peer on a well-known reflector port (when this process may
bind one).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest

from asyncnet import DatagramHandler
from asyncnet.errors import ConfigurationError
from asyncnet.servers import DatagramServer
from asyncnet.servers.reflection import SourceFilter

pytestmark = pytest.mark.all_loops


class Echo(DatagramHandler):
    """Answers every datagram with itself: the worst case for a loop."""

    def __init__(self) -> None:
        self.seen = asyncio.Event()

    def handle(self, data: bytes, addr: Any) -> bytes:
        self.seen.set()
        return data


async def echo_reply(address: Any, payload: bytes) -> bytes:
    """Send ``payload`` from a fresh client socket; return the reply."""
    loop = asyncio.get_running_loop()
    replies: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            replies.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=address)
    try:
        transport.sendto(payload)
        async with asyncio.timeout(5):
            return await replies.get()
    finally:
        transport.close()


async def wait_for_drops(server: DatagramServer, count: int) -> None:
    async with asyncio.timeout(5):
        while server.stats.datagrams_reflected < count:
            await asyncio.sleep(0.005)


async def test_ping_pong_between_two_servers_stops_at_once(caplog: Any) -> None:
    """Issue 10 item 2: server A sends to B from its own socket; B never answers A."""
    caplog.set_level(logging.WARNING, logger="asyncnet.server")
    async with DatagramServer(Echo()) as a, DatagramServer(Echo()) as b:
        a.sendto(b"ping", b.address)
        await wait_for_drops(b, 1)
        # Both still serve ordinary clients, and A never got anything back.
        assert await echo_reply(a.address, b"probe-a") == b"probe-a"
        assert await echo_reply(b.address, b"probe-b") == b"probe-b"
        assert a.stats.datagrams_in == 1  # only the probe
        assert b.stats.datagrams_in == 2
        assert b.stats.datagrams_out == 1  # the probe's reply, never a pong
        assert b.stats.datagrams_reflected == 1
    lines = [r for r in caplog.records if "reflection loop" in r.getMessage()]
    assert len(lines) == 1
    assert "another asyncnet datagram server" in lines[0].getMessage()


async def test_datagram_from_the_servers_own_address_is_dropped() -> None:
    """Issue 10 item 2: source == the server's own address (it sent to itself)."""
    async with DatagramServer(Echo()) as server:
        for _ in range(3):
            server.sendto(b"hello me", server.address)
        await wait_for_drops(server, 3)
        assert await echo_reply(server.address, b"still here") == b"still here"
        assert server.stats.datagrams_out == 3 + 1  # our three sends and the one reply


async def test_same_port_on_this_host_is_dropped_even_across_processes() -> None:
    """Issue 10 item 2: another instance of the service (same port, 127.0.0.2)."""
    unlisted = SourceFilter(local_servers=False)  # as if B were in another process
    async with DatagramServer(Echo(), drop_sources=unlisted) as a:
        port = a.address[1]
        try:
            b = DatagramServer(Echo(), host="127.0.0.2", port=port, drop_sources=unlisted)
            await b.start()
        except OSError as exc:
            pytest.skip(f"cannot bind 127.0.0.2:{port}: {exc}")
        try:
            b.sendto(b"ping", a.address)
            await wait_for_drops(a, 1)
            assert b.stats.datagrams_in == 0
        finally:
            await b.stop()


async def test_reflector_port_source_is_dropped_and_configurable() -> None:
    """Issue 10 item 2: a datagram from 127.0.0.1:7 (echo) is dropped unless allowed."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        peer.bind(("127.0.0.1", 7))
    except OSError as exc:
        peer.close()
        pytest.skip(f"cannot bind udp 127.0.0.1:7 here: {exc}")
    peer.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        async with DatagramServer(Echo()) as server:
            peer.sendto(b"from echo", server.address)
            await wait_for_drops(server, 1)
            assert server.stats.datagrams_out == 0
        allowed = SourceFilter(reflector_ports=frozenset())
        async with DatagramServer(Echo(), drop_sources=allowed) as server:
            peer.sendto(b"from echo", server.address)
            async with asyncio.timeout(5):
                assert await loop.sock_recv(peer, 100) == b"from echo"
            assert server.stats.datagrams_reflected == 0
    finally:
        peer.close()


async def test_no_filter_answers_everybody() -> None:
    """Issue 10 item 2: ``drop_sources=None`` turns the policy off (a loop is possible)."""
    async with (
        DatagramServer(Echo(), drop_sources=None) as a,
        DatagramServer(Echo(), drop_sources=None) as b,
    ):
        handler_a = a.handler
        assert isinstance(handler_a, Echo)
        b.sendto(b"ping", a.address)  # A answers B, B answers A...
        async with asyncio.timeout(5):
            await handler_a.seen.wait()
        a.close()  # ...so stop it right away
        b.close()


def test_bad_filter_options_are_refused() -> None:
    """Issue 10 item 2: options are checked when the server is made."""
    with pytest.raises(ConfigurationError, match="reflector_ports"):
        SourceFilter(reflector_ports=frozenset({0}))
    with pytest.raises(ConfigurationError, match="drop_sources"):
        DatagramServer(Echo(), drop_sources=[7])  # type: ignore[arg-type]
