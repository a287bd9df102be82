"""The stream server with line handlers: the upper service over TCP, IPv6, Unix, TLS."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from pathlib import Path

import pytest

from asyncnet import (
    ConfigurationError,
    LineClient,
    LineHandler,
    NetworkError,
    StreamHandler,
    StreamServer,
    tcp_server,
    unix_server,
)
from asyncnet.demos.upper import Upper
from asyncnet.testing import can_bind_ipv6

pytestmark = pytest.mark.all_loops


async def talk(client: LineClient, count: int, tag: str) -> None:
    for n in range(count):
        line = f"client {tag} line {n} mixed Case"
        assert await client.request(line) == line.upper()


async def test_upper_with_200_concurrent_clients() -> None:
    """S8 (scale): 200 clients at once, every reply checked, in order per connection."""
    async with tcp_server(Upper) as server:
        clients = [await LineClient.connect(*server.address, timeout=10) for _ in range(200)]
        try:
            async with asyncio.TaskGroup() as group:
                for n, client in enumerate(clients):
                    group.create_task(talk(client, 20, str(n)))
            assert server.stats.connections_active == 200
        finally:
            for client in clients:
                await client.stop()
    assert server.stats.connections_total == 200
    assert server.stats.connections_active == 0
    assert server.stats.handler_errors == 0


async def test_blank_line_ends_the_session() -> None:
    async with tcp_server(Upper) as server, await LineClient.connect(*server.address) as client:
        assert await client.request("abc") == "ABC"
        await client.send_line("")
        assert await client.read_line() is None  # the server closed


async def test_pipelined_lines_in_one_segment_get_replies_in_order() -> None:
    async with tcp_server(Upper) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"one\ntwo\r\nthree\n\n")
        assert await reader.read() == b"ONE\nTWO\nTHREE\n"
        writer.close()
        await writer.wait_closed()


async def test_final_line_without_delimiter_is_handled_at_eof() -> None:
    """S4 (half-close): request, then write_eof(): the full response is delivered."""
    async with tcp_server(Upper) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"first\nlast without newline")
        writer.write_eof()
        async with asyncio.timeout(5):
            assert await reader.read() == b"FIRST\nLAST WITHOUT NEWLINE\n"
        writer.close()
        await writer.wait_closed()


@pytest.mark.skipif(not can_bind_ipv6(), reason="this machine has no IPv6 loopback (::1)")
async def test_upper_over_ipv6_loopback() -> None:
    async with tcp_server(Upper, host="::1") as server:
        assert server.address[0] == "::1"
        async with await LineClient.connect("::1", server.address[1]) as client:
            await talk(client, 5, "v6")


async def test_upper_over_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "upper.sock")
    async with unix_server(Upper, path) as server:
        assert server.address == path
        async with await LineClient.connect(path=path) as client:
            await talk(client, 5, "unix")
    assert not Path(path).exists()  # the socket file is removed on close


async def test_upper_over_tls() -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with tcp_server(Upper, ssl=server_ctx) as server:
        async with await LineClient.connect(*server.address, ssl=client_ctx) as client:
            await talk(client, 5, "tls")
            assert client.writer.get_extra_info("ssl_object") is not None


async def test_async_handler_that_suspends_keeps_replies_in_order() -> None:
    class Slowish(LineHandler):
        async def handle_line(self, line: str) -> str:
            if line.startswith("slow"):
                await asyncio.sleep(0.01)
            return line[::-1]

    async with tcp_server(Slowish) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"slow1\nfast2\nslow3\nfast4\n")
        replies = [await reader.readline() for _ in range(4)]
        assert replies == [b"1wols\n", b"2tsaf\n", b"3wols\n", b"4tsaf\n"]
        writer.close()
        await writer.wait_closed()


async def test_run_in_task_gives_handlers_a_task_from_their_first_line() -> None:
    class Timed(LineHandler):
        run_in_task = True

        async def handle_line(self, line: str) -> str:
            async with asyncio.timeout(1):  # needs a current task before any await
                return f"{line}:{asyncio.current_task() is not None}"

    async with tcp_server(Timed) as server, await LineClient.connect(*server.address) as client:
        assert await client.request("x") == "x:True"


async def test_greeting_send_line_and_custom_delimiters() -> None:
    class Crlf(LineHandler):
        delimiter = b"\r\n"

        def greeting(self) -> str:
            return "+OK ready"

        def handle_line(self, line: str) -> str | None:
            self.send_line(f"* got {line}")
            return "+OK"

    async with tcp_server(Crlf) as server:
        async with await LineClient.connect(*server.address, delimiter=b"\r\n") as client:
            assert await client.read_line() == "+OK ready"
            assert await client.request("NOOP") == "* got NOOP"
            assert await client.read_line() == "+OK"


async def test_invalid_utf8_is_a_protocol_error_reply_and_close() -> None:
    async with tcp_server(Upper) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"ok\n\xff\xfe bad\nnever handled\n")
        data = await reader.read()
        assert data.startswith(b"OK\nerror: invalid utf-8 in line")
        assert b"NEVER" not in data
        assert server.stats.protocol_errors == 1
        writer.close()
        await writer.wait_closed()


async def test_errors_replace_setting_accepts_invalid_utf8() -> None:
    class Lenient(Upper):
        errors = "replace"

    async with tcp_server(Lenient) as server:
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"a\xffb\n\n")
        assert await reader.read() == "A\ufffdB\n".encode()
        writer.close()
        await writer.wait_closed()


async def test_stream_handler_readline_and_stats() -> None:
    class Echo(StreamHandler):
        async def handle(self) -> None:
            while line := await self.readline():
                self.writer.write(line)
                await self.writer.drain()

    async with tcp_server(Echo) as server:
        async with await LineClient.connect(*server.address) as client:
            assert await client.request("echo me") == "echo me"
        await asyncio.sleep(0)
    assert server.stats.bytes_in == server.stats.bytes_out == len(b"echo me\n")


async def test_bind_refuses_all_interfaces_unless_asked() -> None:
    for host in ("", None, "::", str(ipaddress.IPv4Address(socket.INADDR_ANY))):
        with pytest.raises(ConfigurationError, match="every interface"):
            StreamServer(Upper, host=host)


async def test_port_in_use_raises_oserror_fast() -> None:
    """S8: binding a busy port raises OSError(EADDRINUSE)."""
    async with tcp_server(Upper) as server:
        with pytest.raises(OSError) as info:
            await StreamServer(Upper, port=server.address[1]).start()
        assert info.value.errno is not None


async def test_restart_on_the_same_port_right_after_active_connections() -> None:
    """S8: reuse_address lets a server rebind the port its predecessor just used."""
    async with tcp_server(Upper) as first:
        port = first.address[1]
        async with await LineClient.connect(*first.address) as client:
            assert await client.request("a") == "A"
    async with tcp_server(Upper, port=port) as second:
        async with await LineClient.connect(*second.address) as client:
            assert await client.request("b") == "B"


async def test_client_connect_to_closed_port_is_a_clear_network_error() -> None:
    async with tcp_server(Upper) as server:
        port = server.address[1]
    with pytest.raises(NetworkError, match=f"connect with 127.0.0.1:{port} failed") as info:
        await LineClient.connect("127.0.0.1", port, timeout=2)
    assert isinstance(info.value, OSError)
    assert info.value.phase == "connect"
