"""C2 with a real broadcast, on a private network the test builds and removes.

Two network namespaces joined by a veth pair that is created directly inside them (it
never appears on the host), addressed from a TEST-NET range that no interface of the
host uses.  The sender and the bucket run in subprocesses under ``ip netns exec``; the
test process itself sends nothing (the loopback guard still applies to it).  Needs
root (or CAP_NET_ADMIN); skipped with the reason otherwise.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

RECEIVER = """
import asyncio, sys
from asyncnet.creosote import Bucket

async def main():
    async with Bucket(None, 0, all_interfaces=True) as bucket:
        print("ready", bucket.address[1], flush=True)
        async with asyncio.timeout(20):
            async for message in bucket:
                print("got", message.sender[0], message.data.decode(), flush=True)
                return

asyncio.run(main())
"""

SENDER = """
import asyncio, sys
from asyncnet.creosote import BroadcastNotAllowed, Emitter, spew

async def main(host, port):
    try:
        Emitter(host, port)
    except BroadcastNotAllowed as exc:
        print("refused:", exc, flush=True)
    async with Emitter(host, port, broadcast=True, framed=True) as emitter:
        await emitter.spew("hello, whole subnet")
        print("sent", emitter.stats.messages, "errors", emitter.stats.errors, flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; raise with its stderr on failure."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if done.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def unused_test_net() -> ipaddress.IPv4Network:
    """A documentation range (RFC 5737) that no interface of this host is on."""
    shown = ip("-4", "-o", "addr", "show").stdout
    used = [ipaddress.ip_interface(a) for a in re.findall(r"inet (\S+)", shown)]
    for candidate in ("198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24"):
        network = ipaddress.IPv4Network(candidate)
        if not any(interface.network.overlaps(network) for interface in used):
            return network
    pytest.skip("every TEST-NET range is in use on this host")


async def run_in(namespace: str, code: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "ip",
        "netns",
        "exec",
        namespace,
        sys.executable,
        "-c",
        code,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )


async def line_of(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        line = (await proc.stdout.readline()).decode().strip()
    if not line:
        assert proc.stderr is not None
        raise AssertionError(f"subprocess ended: {(await proc.stderr.read()).decode()}")
    return line


@pytest.mark.netns
@pytest.mark.slow
async def test_broadcast_reaches_a_bucket_on_another_namespace() -> None:
    """C2: without broadcast=True the subnet broadcast is refused; with it, it arrives."""
    if shutil.which("ip") is None:
        pytest.skip("the `ip` tool (iproute2) is not installed")
    tag = uuid.uuid4().hex[:8]
    sender_ns, bucket_ns = f"creosote-{tag}-a", f"creosote-{tag}-b"
    try:
        ip("netns", "add", sender_ns)
    except RuntimeError as exc:
        pytest.skip(f"cannot create a network namespace here (needs root): {exc}")
    processes: list[asyncio.subprocess.Process] = []
    try:
        ip("netns", "add", bucket_ns)
        network = unused_test_net()
        sender_ip, bucket_ip = network[1], network[2]
        # Created inside the sender's namespace with its peer moved straight into the
        # bucket's: the pair never exists on the host.
        ip(
            "-n",
            sender_ns,
            "link",
            "add",
            "cr0",
            "type",
            "veth",
            "peer",
            "name",
            "cr1",
            "netns",
            bucket_ns,
        )
        for namespace, device, address in (
            (sender_ns, "cr0", sender_ip),
            (bucket_ns, "cr1", bucket_ip),
        ):
            ip(
                "-n",
                namespace,
                "addr",
                "add",
                f"{address}/{network.prefixlen}",
                "brd",
                "+",
                "dev",
                device,
            )
            ip("-n", namespace, "link", "set", "lo", "up")
            ip("-n", namespace, "link", "set", device, "up")

        receiver = await run_in(bucket_ns, RECEIVER)
        processes.append(receiver)
        ready = await line_of(receiver)
        assert ready.startswith("ready "), ready
        port = ready.split()[1]

        sender = await run_in(sender_ns, SENDER, str(network.broadcast_address), port)
        processes.append(sender)
        refused = await line_of(sender)
        sent = await line_of(sender)
        got = await line_of(receiver)
        async with asyncio.timeout(20):
            assert await sender.wait() == 0
            assert await receiver.wait() == 0
    finally:
        for proc in processes:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        for namespace in (sender_ns, bucket_ns):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=20)
    assert refused.startswith(f"refused: {network.broadcast_address} is a broadcast address")
    assert sent == "sent 1 errors 0"
    assert got == f"got {sender_ip} hello, whole subnet"
    left = ip("netns", "list").stdout
    assert sender_ns not in left
    assert bucket_ns not in left
