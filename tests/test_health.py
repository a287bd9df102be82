"""HealthServer: HTTP and TCP health checks that turn unhealthy as soon as draining starts."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
from typing import Any

import pytest

from asyncnet import ConfigurationError, StreamServer, tcp_server
from asyncnet.demos.upper import Upper
from asyncnet.servers import HealthServer

from .helpers import read_all, read_listening_line, spawn


async def check(
    address: Any, request: bytes = b"GET /healthz HTTP/1.0\r\n\r\n"
) -> tuple[int, bytes]:
    """One HTTP check as a balancer sends it; the status code and the body."""
    async with asyncio.timeout(5):
        reader, writer = await asyncio.open_connection(*address)
        writer.write(request)
        response = await read_all(reader)
        writer.close()
        await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.0 (\d{3}) ", head)
    assert match, response
    length = re.search(rb"Content-Length: (\d+)", head)
    assert length, response
    assert int(length[1]) == len(body), response
    return int(match[1]), body


async def refused(address: Any) -> bool:
    try:
        async with asyncio.timeout(5):
            _, writer = await asyncio.open_connection(*address)
    except (ConnectionRefusedError, ConnectionResetError):
        return True  # reset: accepted by the kernel just as the listener closed
    writer.close()
    await writer.wait_closed()
    return False


async def test_200_while_serving_503_once_the_server_starts_draining() -> None:
    """S6 (graceful stop) seen by a balancer: the check fails as soon as draining begins."""
    async with tcp_server(Upper) as upper, HealthServer(upper) as health:
        assert await check(health.address) == (200, b"ok\r\n")
        upper.close(grace=5)
        assert await check(health.address) == (503, b"draining\r\n")
        await upper.wait_closed()
        assert await check(health.address) == (503, b"draining\r\n")


async def test_503_before_the_watched_server_has_started() -> None:
    upper = StreamServer(Upper, port=0)
    async with HealthServer(upper) as health:
        assert (await check(health.address))[0] == 503
        async with upper:
            assert (await check(health.address))[0] == 200


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: HAProxy\r\n\r\n", 200),
        (b"HEAD /healthz?full=1 HTTP/1.0\r\n\r\n", 200),
        (b"GET / HTTP/1.0\r\n\r\n", 404),
        (b"POST /healthz HTTP/1.0\r\n\r\n", 405),
        (b"GET /healthz\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.0\r\n" + b"X: y\r\n" * 100 + b"\r\n", 431),
    ],
)
async def test_http_answers(request_bytes: bytes, status: int) -> None:
    async with tcp_server(Upper) as upper, HealthServer(upper) as health:
        assert (await check(health.address, request_bytes))[0] == status


async def test_manual_draining_takes_an_instance_out() -> None:
    async with tcp_server(Upper) as upper, HealthServer(upper) as health:
        health.draining = True
        assert (await check(health.address))[0] == 503
        health.draining = False
        assert (await check(health.address))[0] == 200


async def test_drain_delay_http_reports_503_then_closes() -> None:
    async with tcp_server(Upper) as upper:
        health = await HealthServer(upper, drain_delay=0.3).start()
        address = health.address
        loop = asyncio.get_running_loop()
        started = loop.time()
        health.close()
        assert (await check(address))[0] == 503  # still answering, unhealthy
        assert upper.is_serving  # the real server keeps accepting meanwhile
        async with asyncio.timeout(5):
            await health.wait_closed()
        assert loop.time() - started >= 0.3
        assert await refused(address)


async def test_tcp_mode_closes_the_listener_at_once_but_waits_the_delay() -> None:
    async with tcp_server(Upper) as upper:
        health = await HealthServer(upper, mode="tcp", drain_delay=0.3).start()
        address = health.address
        assert not await refused(address)
        loop = asyncio.get_running_loop()
        started = loop.time()
        health.close()
        # The listener closes in the first step of the shutdown task close() started:
        # one turn of the loop, long before the drain delay is over.
        await asyncio.sleep(0)
        assert await refused(address)
        async with asyncio.timeout(5):
            await health.wait_closed()
        assert loop.time() - started >= 0.3


def test_bad_options_name_the_option() -> None:
    with pytest.raises(ConfigurationError, match="mode"):
        HealthServer(mode="udp")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="drain_delay"):
        HealthServer(drain_delay=-1)
    with pytest.raises(ConfigurationError, match="path"):
        HealthServer(path="healthz")


UPPER_HEALTH = r"tcp://127\.0\.0\.1:(\d+) and udp://127\.0\.0\.1:\d+ and tcp://127\.0\.0\.1:(\d+)"


@pytest.mark.slow
async def test_upper_demo_sigterm_drains_then_exits_zero() -> None:
    """S6 as a process: SIGTERM, unhealthy at once, still serving during --drain-delay, exit 0."""
    args = ["-m", "asyncnet.demos.upper", "--port", "0", "--health-port", "0"]
    with spawn([*args, "--drain-delay", "1.0"]) as proc:
        match = await asyncio.to_thread(read_listening_line, proc, UPPER_HEALTH)
        port, health_port = int(match[1]), int(match[2])
        assert (await check(("127.0.0.1", health_port)))[0] == 200
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"before\n")
            assert await reader.readline() == b"BEFORE\n"
            proc.send_signal(signal.SIGTERM)
            while (await check(("127.0.0.1", health_port)))[0] == 200:
                pass  # the signal arrives asynchronously; each check is a round trip
            # Draining: new connections are still accepted and served.
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"during\n")
                assert sock.recv(100) == b"DURING\n"
            writer.write(b"in flight\n")
            assert await reader.readline() == b"IN FLIGHT\n"
            assert await read_all(reader) == b""  # then closed gracefully
            writer.close()
            await writer.wait_closed()
        assert await asyncio.to_thread(proc.wait, 10) == 0
