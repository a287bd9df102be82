"""PROXY protocol on StreamServer: real sockets on loopback, raw clients playing the balancer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any, ClassVar

import pytest

from asyncnet import ConfigurationError, LineHandler, StreamHandler, StreamServer, tcp_server
from asyncnet.protocols._proxy import TLV, V2_SIGNATURE, encode_v1, encode_v2
from asyncnet.servers._proxy_protocol import DEFAULT_TRUSTED, is_trusted, parse_networks
from asyncnet.testing import can_bind_ipv6

pytestmark = pytest.mark.all_loops

CLIENT4 = ("192.0.2.7", 40000)
FRONT4 = ("198.51.100.1", 443)


class Recording(LineHandler):
    """Upper-cases lines and records what it saw of each connection."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def setup(self) -> None:
        self.seen.append(
            {
                "peer": self.peer,
                "balancer": self.transport.get_extra_info("proxy_peername"),
                "tlvs": self.transport.get_extra_info("proxy_tlvs"),
                "header": self.transport.get_extra_info("proxy_header"),
                "lines": [],
            }
        )

    def handle_line(self, line: str) -> str | None:
        self.seen[-1]["lines"].append(line)
        if not line:
            self.close()
            return None
        return line.upper()


@pytest.fixture(autouse=True)
def _fresh_records() -> None:
    Recording.seen = []


async def exchange(address: Any, payload: bytes) -> bytes:
    """Send ``payload`` (header + lines ending in a blank line), read to EOF."""
    async with asyncio.timeout(5):
        reader, writer = await asyncio.open_connection(*address[:2])
        try:
            writer.write(payload)
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()


@pytest.mark.parametrize("encode", [encode_v1, encode_v2])
async def test_handler_peer_is_the_client_named_in_the_header(encode) -> None:
    async with tcp_server(Recording, proxy_protocol=True) as server:
        reply = await exchange(server.address, encode(CLIENT4, FRONT4) + b"abc\n\n")
    assert reply == b"ABC\n"
    [seen] = Recording.seen
    assert seen["peer"] == CLIENT4
    assert seen["balancer"][0] == "127.0.0.1"
    assert seen["lines"] == ["abc", ""]
    assert server.stats.connections_total == 1


async def test_header_dribbled_byte_by_byte_then_data() -> None:
    """Any split of the header over TCP segments gives the same connection."""
    wire = encode_v2(CLIENT4, FRONT4, tlvs=((TLV.AUTHORITY, b"example.com"),))
    async with tcp_server(Recording, proxy_protocol=True) as server:
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection(*server.address)
            for i in range(len(wire)):
                writer.write(wire[i : i + 1])
                await writer.drain()
            writer.write(b"hello\n")
            assert await reader.readline() == b"HELLO\n"
            writer.write(b"\n")
            assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()
    [seen] = Recording.seen
    assert seen["peer"] == CLIENT4
    assert seen["tlvs"] == ((TLV.AUTHORITY, b"example.com"),)
    assert seen["header"].tlv(TLV.AUTHORITY) == b"example.com"


async def test_local_and_unknown_keep_the_connection_address() -> None:
    async with tcp_server(Recording, proxy_protocol=True) as server:
        local = encode_v2(CLIENT4, FRONT4, command="LOCAL")
        assert await exchange(server.address, local + b"x\n\n") == b"X\n"
        assert await exchange(server.address, encode_v1(None, None) + b"y\n\n") == b"Y\n"
    assert [s["peer"][0] for s in Recording.seen] == ["127.0.0.1", "127.0.0.1"]
    assert Recording.seen[0]["peer"] == Recording.seen[0]["balancer"]


@pytest.mark.skipif(not can_bind_ipv6(), reason="no IPv6 loopback (::1) on this machine")
async def test_tcp6_header_over_ipv6_loopback() -> None:
    client6 = ("2001:db8::7", 40000)
    async with tcp_server(Recording, host="::1", proxy_protocol=True) as server:
        reply = await exchange(server.address, encode_v1(client6, ("2001:db8::1", 1)) + b"v6\n\n")
    assert reply == b"V6\n"
    assert Recording.seen[0]["peer"] == client6
    assert Recording.seen[0]["balancer"][0] == "::1"


class Echo(StreamHandler):
    peers: ClassVar[list[Any]] = []

    async def handle(self) -> None:
        self.peers.append(self.peer)
        line = await self.readline()
        self.writer.write(line.upper())
        await self.writer.drain()


async def test_stream_handler_behind_the_proxy_protocol() -> None:
    Echo.peers = []
    async with tcp_server(Echo, proxy_protocol=True) as server:
        reply = await exchange(server.address, encode_v2(CLIENT4, FRONT4) + b"stream\n")
    assert reply == b"STREAM\n"
    assert Echo.peers == [CLIENT4]


BAD_HEADERS = {
    "not a header": b"GET / HTTP/1.0\r\n\r\n",
    "malformed v1": b"PROXY TCP4 192.0.2.7 nonsense 1 2\r\nQUIT\n",
    "v1 too long": b"PROXY TCP4 " + b"1" * 120 + b"\r\nQUIT\n",
    "oversized v2": encode_v2(CLIENT4, FRONT4, tlvs=((0xE0, bytes(4000)),)) + b"QUIT\n",
    "bad v2 TLV": V2_SIGNATURE + b"\x21\x11\x00\x11" + bytes(12) + b"\x05\x00\x09ab" + b"QUIT\n",
}


@pytest.mark.parametrize("payload", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
async def test_bad_header_closes_and_nothing_reaches_the_handler(payload, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="asyncnet.server")
    async with tcp_server(Recording, proxy_protocol=True) as server:
        try:
            reply = await exchange(server.address, payload)
        except ConnectionResetError:
            reply = b""
        assert reply == b""
        # The server keeps serving good connections.
        assert await exchange(server.address, encode_v1(CLIENT4, FRONT4) + b"ok\n\n") == b"OK\n"
    assert server.stats.protocol_errors == 1
    assert [s["lines"] for s in Recording.seen] == [["ok", ""]]
    assert sum("bad PROXY protocol header" in r.getMessage() for r in caplog.records) == 1


async def test_truncated_header_then_eof_reaches_no_handler(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="asyncnet.server")
    async with tcp_server(Recording, proxy_protocol=True) as server:
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write(encode_v1(CLIENT4, FRONT4)[:20])
            writer.write_eof()
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()
    assert Recording.seen == []
    assert server.stats.protocol_errors == 1
    assert any("closed after 20 bytes" in r.getMessage() for r in caplog.records)


async def test_header_timeout_closes_a_silent_or_slow_balancer() -> None:
    async with tcp_server(Recording, proxy_protocol=True, proxy_header_timeout=0.2) as server:
        async with asyncio.timeout(3):
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write(b"PROXY TCP4 ")
            loop = asyncio.get_running_loop()
            started = loop.time()
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""
            assert loop.time() - started < 2
            writer.close()
            await writer.wait_closed()
    assert Recording.seen == []
    assert server.stats.connections_timed_out == 1


async def test_untrusted_source_is_refused_before_reading(caplog) -> None:
    """Only configured networks may claim a client address; loopback is not one here."""
    caplog.set_level(logging.WARNING, logger="asyncnet.server")
    async with tcp_server(Recording, proxy_protocol=True, proxy_trusted=["192.0.2.0/24"]) as server:
        try:
            reply = await exchange(server.address, encode_v1(CLIENT4, FRONT4) + b"x\n\n")
        except ConnectionResetError:
            reply = b""
    assert reply == b""
    assert Recording.seen == []
    assert server.stats.connections_refused == 1
    assert any("not a trusted PROXY protocol source" in r.getMessage() for r in caplog.records)


async def test_bare_connect_and_close_is_not_an_error(caplog) -> None:
    """A balancer's plain TCP check connects and closes: no warning, no handler."""
    caplog.set_level(logging.WARNING, logger="asyncnet.server")
    async with tcp_server(Recording, proxy_protocol=True) as server:
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write_eof()
            assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()
    assert Recording.seen == []
    assert server.stats.protocol_errors == 0
    assert not caplog.records


async def test_without_proxy_protocol_a_header_is_just_a_line() -> None:
    async with tcp_server(Recording) as server:
        reply = await exchange(server.address, encode_v1(CLIENT4, FRONT4) + b"\n")
    assert reply.startswith(b"PROXY TCP4")
    assert Recording.seen[0]["peer"][0] == "127.0.0.1"


def test_bad_options_name_the_option() -> None:
    with pytest.raises(ConfigurationError, match="proxy_trusted"):
        StreamServer(Recording, proxy_protocol=True, proxy_trusted=["not-a-net"])
    with pytest.raises(ConfigurationError, match="proxy_trusted is empty"):
        StreamServer(Recording, proxy_protocol=True, proxy_trusted=[])
    with pytest.raises(ConfigurationError, match="proxy_header_timeout"):
        StreamServer(Recording, proxy_protocol=True, proxy_header_timeout=0)
    with pytest.raises(ConfigurationError, match="ssl"):
        StreamServer(Recording, proxy_protocol=True, ssl=ssl.create_default_context())


async def test_unix_socket_balancer_is_trusted(tmp_path) -> None:
    """HAProxy can reach a server over a Unix socket: only local processes can connect."""
    path = str(tmp_path / "upper.sock")
    async with StreamServer(Recording, path=path, proxy_protocol=True):
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(encode_v2(CLIENT4, FRONT4) + b"unix\n\n")
            assert await reader.read() == b"UNIX\n"
            writer.close()
            await writer.wait_closed()
    assert Recording.seen[0]["peer"] == CLIENT4


def test_trusted_networks() -> None:
    nets = parse_networks(["10.0.0.0/8", "::1", "192.0.2.1"], "proxy_trusted")
    assert is_trusted(("10.1.2.3", 5), nets)
    assert is_trusted(("::ffff:10.1.2.3", 5, 0, 0), nets)  # IPv4-mapped on a dual-stack socket
    assert is_trusted(("::1", 5, 0, 0), nets)
    assert is_trusted(("192.0.2.1", 5), nets)
    assert not is_trusted(("192.0.2.2", 5), nets)
    assert not is_trusted(("127.0.0.1", 5), nets)
    assert is_trusted("", nets)  # a Unix socket peer
    loopback = parse_networks(DEFAULT_TRUSTED, "proxy_trusted")
    assert is_trusted(("127.0.0.2", 1), loopback)
    assert not is_trusted(("192.0.2.2", 1), loopback)


async def test_shutdown_drops_connections_still_waiting_for_a_header() -> None:
    """S6 with the PROXY protocol: a header that never completes does not hold up stop()."""
    server = await StreamServer(Recording, port=0, proxy_protocol=True).start()
    async with asyncio.timeout(5):
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"PROXY TCP4 ")
        await writer.drain()
        # A second connection, made after the first, served end to end: the server
        # accepts in order, so the first is now accepted and waiting for its header.
        after_reader, after_writer = await asyncio.open_connection(*server.address)
        after_writer.write(b"PROXY TCP4 192.0.2.7 127.0.0.1 4000 80\r\nping\n")
        assert await after_reader.readline() == b"PING\n"
        loop = asyncio.get_running_loop()
        started = loop.time()
        await server.stop()
        assert loop.time() - started < 1  # 3.12+ would wait for the transport
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read() == b""
        assert loop.time() - started < 1  # not the 5 s header timeout
        for w in (writer, after_writer):
            w.close()
            with contextlib.suppress(ConnectionResetError):
                await w.wait_closed()
    assert [(s["peer"], s["lines"]) for s in Recording.seen] == [(("192.0.2.7", 4000), ["ping"])]


UNTRUSTED_FLOOD = 60


async def test_untrusted_sources_log_one_line_not_one_each(caplog) -> None:
    """Refusals of untrusted PROXY sources are counted one by one but logged rate-limited,
    like the server's other refusals: 60 refusals, 60 counted, one WARNING line."""
    caplog.set_level(logging.WARNING, logger="asyncnet.server")
    async with tcp_server(Recording, proxy_protocol=True, proxy_trusted=["192.0.2.0/24"]) as server:
        for _ in range(UNTRUSTED_FLOOD):
            try:
                reply = await exchange(server.address, encode_v1(CLIENT4, FRONT4) + b"x\n\n")
            except ConnectionResetError:
                reply = b""
            assert reply == b""
        assert server.stats.connections_refused == UNTRUSTED_FLOOD
    lines = [r.getMessage() for r in caplog.records if "PROXY" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "not a trusted PROXY protocol source" in lines[0]
    assert "refused 1 connection(s)" in lines[0]
    assert Recording.seen == []


async def test_bad_headers_log_one_line_not_one_each(caplog) -> None:
    """A flood of malformed headers (from anyone the trusted networks let in) is counted
    per connection and logged rate-limited, with the latest reason."""
    caplog.set_level(logging.WARNING, logger="asyncnet.server")
    async with tcp_server(Recording, proxy_protocol=True) as server:
        for _ in range(UNTRUSTED_FLOOD):
            try:
                reply = await exchange(server.address, BAD_HEADERS["not a header"])
            except ConnectionResetError:
                reply = b""
            assert reply == b""
        assert await exchange(server.address, encode_v1(CLIENT4, FRONT4) + b"ok\n\n") == b"OK\n"
    assert server.stats.protocol_errors == UNTRUSTED_FLOOD
    lines = [r.getMessage() for r in caplog.records if "PROXY" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "bad PROXY protocol header" in lines[0]


async def test_header_timeouts_log_one_line_not_one_each(caplog) -> None:
    """Connections that never finish their header time out one by one, logged rate-limited."""
    caplog.set_level(logging.WARNING, logger="asyncnet.server")

    async def silent(address: Any) -> None:
        reader, writer = await asyncio.open_connection(*address[:2])
        writer.write(b"PROXY TCP4 ")
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read() == b""
        writer.close()
        with contextlib.suppress(ConnectionResetError):
            await writer.wait_closed()

    async with tcp_server(Recording, proxy_protocol=True, proxy_header_timeout=0.2) as server:
        async with asyncio.timeout(5), asyncio.TaskGroup() as group:
            for _ in range(20):
                group.create_task(silent(server.address))
    assert server.stats.connections_timed_out == 20
    lines = [r.getMessage() for r in caplog.records if "PROXY" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "no complete PROXY protocol header within 0.2 s" in lines[0]
