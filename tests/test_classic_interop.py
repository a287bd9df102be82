"""The classic blocking programs in demos/ against asyncnet, both ways."""

from __future__ import annotations

import subprocess
import sys

import pytest

from asyncnet import DatagramClient, LineClient, tcp_server, udp_server
from asyncnet.demos.upper import Upper, UpperDatagram

from .helpers import ROOT, read_listening_line, spawn

pytestmark = pytest.mark.slow

LISTENING = r"listening on 127\.0\.0\.1:(\d+)"


async def run_client(script: str, port: int, text: str) -> subprocess.CompletedProcess[str]:
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        f"demos/{script}",
        str(port),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    async with asyncio.timeout(20):
        out, err = await proc.communicate(text.encode())
    assert proc.returncode is not None
    return subprocess.CompletedProcess(script, proc.returncode, out.decode(), err.decode())


async def test_classic_tcp_client_against_asyncnet_server() -> None:
    async with tcp_server(Upper) as server:
        done = await run_client("tcpcli1.py", server.address[1], "spam\neggs\n\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["SPAM", "EGGS"]
    assert "using ('127.0.0.1'," in done.stderr


async def test_classic_udp_client_against_asyncnet_server() -> None:
    async with udp_server(UpperDatagram) as server:
        done = await run_client("udpcli1.py", server.address[1], "MixedCaseString\nagain\n\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["MIXEDCASESTRING", "AGAIN"]


@pytest.mark.parametrize(
    "args",
    [
        ["tcpserv1.py"],
        ["SockServTCP.py"],
        ["SockServTCP.py", "--threading"],
        ["SockServTCP.py", "--forking"],
    ],
    ids=["bind-accept", "socketserver", "threading", "forking"],
)
async def test_asyncnet_line_client_against_classic_tcp_servers(args: list[str]) -> None:
    with spawn([f"demos/{args[0]}", *args[1:], "0"]) as proc:
        port = int(read_listening_line(proc, LISTENING)[1])
        for round_ in range(2):  # the bind/accept server handles clients one after another
            async with await LineClient.connect("127.0.0.1", port, timeout=5) as client:
                assert await client.request(f"round {round_}") == f"ROUND {round_}"
                await client.send_line("")
        # SIGTERM: a process started in the background may inherit SIGINT ignored,
        # and the classic programs rely on KeyboardInterrupt
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize(
    "args",
    [
        ["udpserv1.py"],
        ["SockServUDP.py"],
        ["SockServUDP.py", "--threading"],
        ["SockServUDP.py", "--forking"],
    ],
    ids=["udpserv1", "socketserver", "threading", "forking"],
)
async def test_asyncnet_datagram_client_against_classic_udp_servers(args: list[str]) -> None:
    with spawn([f"demos/{args[0]}", *args[1:], "0"]) as proc:
        port = int(read_listening_line(proc, LISTENING)[1])
        async with await DatagramClient.connect("127.0.0.1", port, timeout=2) as client:
            for n in range(3):
                assert await client.request(b"datagram %d" % n) == b"DATAGRAM %d" % n
        # SIGTERM: a process started in the background may inherit SIGINT ignored,
        # and the classic programs rely on KeyboardInterrupt
        proc.terminate()
        proc.wait(timeout=10)
