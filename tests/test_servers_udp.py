"""The datagram server and client: the upper service over UDP (RELIABILITY.md U1, U2)."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import pytest

from asyncnet import DatagramClient, DatagramHandler, NetworkError, NoResponse, udp_server
from asyncnet.demos.upper import UpperDatagram
from asyncnet.testing import can_bind_ipv6

pytestmark = pytest.mark.all_loops


class _Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait(data)


async def test_upper_over_udp() -> None:
    async with udp_server(UpperDatagram) as server:
        async with await DatagramClient.connect(*server.address) as client:
            for n in range(20):
                assert await client.request(f"datagram {n}".encode()) == f"DATAGRAM {n}".encode()
            assert client.local_address[0] == "127.0.0.1"
    assert server.stats.datagrams_in == server.stats.datagrams_out == 20


async def test_many_udp_clients_concurrently() -> None:
    async with udp_server(UpperDatagram) as server:

        async def one(n: int) -> None:
            async with await DatagramClient.connect(*server.address, timeout=2) as client:
                for k in range(10):
                    data = f"c{n} d{k}".encode()
                    assert await client.request(data) == data.upper()

        async with asyncio.TaskGroup() as group:
            for n in range(50):
                group.create_task(one(n))


@pytest.mark.skipif(not can_bind_ipv6(), reason="this machine has no IPv6 loopback (::1)")
async def test_upper_over_udp_ipv6() -> None:
    async with udp_server(UpperDatagram, host="::1") as server:
        async with await DatagramClient.connect("::1", server.address[1]) as client:
            assert await client.request(b"six") == b"SIX"


async def test_async_datagram_handler() -> None:
    class Later(DatagramHandler):
        async def handle(self, data: bytes, addr: Any) -> bytes:
            await asyncio.sleep(0)
            return data[::-1]

    async with udp_server(Later) as server, await DatagramClient.connect(*server.address) as c:
        assert await c.request(b"abc") == b"cba"


async def test_no_server_gives_no_response_after_bounded_retries() -> None:
    """The tutorial's UDP client hangs forever; ours gives up and says why.

    The server swallows every datagram (a lost reply looks the same): no ICMP comes
    back, so every attempt is waited out.
    """

    class Silent(DatagramHandler):
        def handle(self, data: bytes, addr: Any) -> None:
            return None

    async with udp_server(Silent) as server:
        port = server.address[1]
        async with await DatagramClient.connect(
            "127.0.0.1", port, timeout=0.05, retries=2, backoff=2.0
        ) as client:
            with pytest.raises(NoResponse, match=f"3 attempts.*127.0.0.1:{port}") as info:
                await client.request(b"anyone?")
        assert server.stats.datagrams_in == 3
    assert isinstance(info.value, TimeoutError)


async def test_bad_datagrams_do_not_hurt_the_server() -> None:
    """U1: empty, 65507 bytes, invalid UTF-8, a burst of 5000; counters add up."""

    class Picky(DatagramHandler):
        def handle(self, data: bytes, addr: Any) -> bytes:
            text = data.decode()  # raises on invalid UTF-8: a per-datagram handler error
            if text == "":
                return b"<empty>"
            return str(len(text)).encode()

    loop = asyncio.get_running_loop()
    async with udp_server(Picky, receive_buffer=1 << 20) as server:
        transport, probe = await loop.create_datagram_endpoint(_Collect, remote_addr=server.address)
        try:
            # asyncio's transport silently skips empty datagrams: send this one raw
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
                raw.setblocking(False)
                raw.bind(("127.0.0.1", 0))
                raw.sendto(b"", server.address)
                assert await asyncio.wait_for(loop.sock_recv(raw, 100), 5) == b"<empty>"
            transport.sendto(b"x" * 65507)
            assert await asyncio.wait_for(probe.received.get(), 5) == b"65507"
            transport.sendto(b"\xff\xfe")
            await server.events.wait_for(lambda: server.stats.handler_errors == 1, timeout=5)
            for n in range(5000):
                transport.sendto(b"burst %d" % n)
                if n % 100 == 0:
                    await asyncio.sleep(0)  # let the loop flush our own send buffer
            # the burst's replies may overflow our socket; ask on a fresh one
            async with await DatagramClient.connect(*server.address, retries=5) as client:
                assert await client.request(b"probe") == b"5"
        finally:
            transport.close()
        stats = server.stats
        handled = stats.datagrams_out + stats.handler_errors + stats.datagrams_dropped
        assert stats.datagrams_in == handled
        assert stats.handler_errors == 1


async def test_reply_to_vanished_client_keeps_serving() -> None:
    """U2: replies to a client whose port has closed are lost; the server keeps serving.

    (Linux reports ICMP port unreachable only on connected sockets, so the server's
    unconnected socket just drops them; the connected client side is checked in
    the next test.)
    """
    async with udp_server(UpperDatagram) as server:
        gone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        gone.bind(("127.0.0.1", 0))
        gone_addr = gone.getsockname()
        gone.sendto(b"reply to me", server.address)
        gone.close()  # vanishes before the reply arrives
        await server.events.wait_for(lambda: server.stats.datagrams_out == 1, timeout=5)
        for n in range(3):
            server.sendto(b"more for the vanished client %d" % n, gone_addr)
        assert server.is_serving
        async with await DatagramClient.connect(*server.address) as client:
            assert await client.request(b"still there") == b"STILL THERE"
    assert server.stats.handler_errors == 0


async def test_connected_client_to_closed_port_sees_port_unreachable() -> None:
    """U2 (connected side): "port unreachable" ends the request at once.

    No retries are waited out: a NetworkError (ECONNREFUSED) comes long before
    ``timeout * (1 + backoff)`` would have elapsed, and the endpoint stays usable.
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    loop = asyncio.get_running_loop()
    async with await DatagramClient.connect(
        "127.0.0.1", closed_port, timeout=2.0, retries=3
    ) as client:
        started = loop.time()
        with pytest.raises(NetworkError, match="port unreachable") as info:
            await client.request(b"x")
        assert loop.time() - started < 2.0  # the first attempt's wait was not waited out
        assert info.value.errno == errno.ECONNREFUSED
        assert f"127.0.0.1:{closed_port}" in str(info.value)
        assert not client.transport.is_closing()


async def test_retry_unreachable_keeps_trying_then_reports_it() -> None:
    """With retry_unreachable=True every attempt is made, then NoResponse."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    async with await DatagramClient.connect(
        "127.0.0.1", closed_port, timeout=0.05, retries=1, retry_unreachable=True
    ) as client:
        with pytest.raises(NoResponse) as info:
            await client.request(b"x")
        assert info.value.attempts == 2
        assert "port unreachable" in " ".join(getattr(info.value, "__notes__", []))


async def test_a_handler_returning_the_wrong_type_is_a_logged_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S5 (UDP): handle() returning neither bytes, None nor an awaitable: one logged
    TypeError that says what it must return; the next datagram is still answered."""

    class Wrong(DatagramHandler):
        def handle(self, data: bytes, addr: Any) -> Any:
            return 42 if data == b"wrong" else data.upper()

    async with udp_server(Wrong) as server, await DatagramClient.connect(*server.address) as c:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"wrong", server.address)
        await server.events.wait_datagrams(1, timeout=5)
        assert await c.request(b"abc") == b"ABC"
    assert server.stats.handler_errors == 1
    assert "handle() must return bytes, None or an awaitable, not int" in caplog.text
