"""HAProxy (Debian's package) in front of three upper instances: PROXY v2, kill, rolling restart.

The configuration is the one in docs/deploy.md, with the test's addresses and ports.
Each instance listens on its own loopback address (127.0.0.2, .3, .4); clients
connect from 127.0.0.9, so the servers' logs prove they see the real client and not
HAProxy (which connects from 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from asyncnet.testing import is_loopback

from .helpers import ROOT, read_listening_line

pytestmark = [
    pytest.mark.slow,
    pytest.mark.serial,  # HAProxy's health checks and a load against their timing
    pytest.mark.skipif(
        shutil.which("haproxy") is None,
        reason="HAProxy is not installed (Debian: apt-get install haproxy; .ci/run does it)",
    ),
]

ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
CLIENT_HOST = "127.0.0.9"
CONCURRENCY = 10


def test_instance_addresses_count_as_loopback() -> None:
    """The loopback guard lets the test use 127.0.0.0/8 beyond 127.0.0.1."""
    assert all(is_loopback((a, 1)) for a in [*ADDRESSES, CLIENT_HOST])


def haproxy_config(frontend_fd: int, stats: Path, backends: list[tuple[str, int, int]]) -> str:
    """docs/deploy.md's configuration, pointed at this test's sockets."""
    doc = (ROOT / "docs" / "deploy.md").read_text()
    config = re.search(r"```haproxy\n(.*?)```", doc, re.S)
    assert config, "docs/deploy.md has no ```haproxy block"
    text = config[1]
    text = text.replace("/run/haproxy/upper.sock", str(stats))
    text = text.replace("bind 127.0.0.1:9999", f"bind fd@{frontend_fd}")
    for n, (host, port, health) in enumerate(backends, 1):
        text, count = re.subn(
            rf"server u{n} \S+ check port \d+",
            f"server u{n} {host}:{port} check port {health}",
            text,
        )
        assert count == 1
    return text


@dataclass
class Instance:
    host: str
    log: Path
    port: int = 0
    health: int = 0
    proc: subprocess.Popen[str] | None = None
    _log_file: IO[str] | None = field(default=None, repr=False)

    def start(self) -> None:
        """Start (or restart on the same ports) and wait until it says it listens."""
        self._log_file = open(self.log, "a")  # noqa: SIM115 (closed in wait)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "asyncnet.demos.upper", "--host", self.host, *self.flags()],
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        host = re.escape(self.host)
        match = read_listening_line(
            self.proc, rf"tcp://{host}:(\d+) and udp://{host}:\d+ and tcp://{host}:(\d+)"
        )
        self.port, self.health = int(match[1]), int(match[2])

    def flags(self) -> list[str]:
        ports = ["--port", str(self.port), "--health-port", str(self.health)]
        return [*ports, "--proxy-protocol", "--drain-delay", "1.0", "-v"]

    def wait(self, timeout: float = 15) -> int:
        assert self.proc is not None
        status = self.proc.wait(timeout=timeout)
        self.proc.communicate(timeout=5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return status

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        if self.proc is not None:
            self.wait()


@dataclass
class Load:
    """CONCURRENCY clients, each doing one request per connection until stopped."""

    address: tuple[str, int]
    ok: int = 0
    failed: list[str] = field(default_factory=list)
    client_ports: set[int] = field(default_factory=set)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    _progress: asyncio.Event = field(default_factory=asyncio.Event)

    async def served(self, count: int) -> None:
        """Return once ``count`` requests in all have been answered."""
        while self.ok < count:
            self._progress.clear()
            await self._progress.wait()

    async def request(self, worker: int, n: int) -> None:
        line = f"worker {worker} request {n}"
        try:
            async with asyncio.timeout(5):
                reader, writer = await asyncio.open_connection(
                    *self.address, local_addr=(CLIENT_HOST, 0)
                )
                try:
                    self.client_ports.add(writer.get_extra_info("sockname")[1])
                    writer.write(f"{line}\n\n".encode())
                    reply = await reader.read()
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
        except (OSError, TimeoutError) as exc:
            self.failed.append(f"{line}: {exc!r}")
            return
        if reply == f"{line.upper()}\n".encode():
            self.ok += 1
            self._progress.set()
        else:
            self.failed.append(f"{line}: reply {reply!r}")

    async def client(self, worker: int, limit: int) -> None:
        for n in range(limit):  # bounded even if nobody sets stop
            if self.stop.is_set():
                return
            await self.request(worker, n)

    def run(self, limit: int = 5000) -> asyncio.Task[list[None]]:
        return asyncio.ensure_future(
            asyncio.gather(*(self.client(w, limit) for w in range(CONCURRENCY)))
        )


async def server_states(stats: Path) -> dict[str, str]:
    """HAProxy's view of the backend servers: {"u1": "UP", ...}."""
    reader, writer = await asyncio.open_unix_connection(str(stats))
    writer.write(b"show stat\n")
    data = (await reader.read()).decode()
    writer.close()
    await writer.wait_closed()
    lines = data.strip().splitlines()
    columns = lines[0].lstrip("# ").split(",")
    states = {}
    for row in lines[1:]:
        values = dict(zip(columns, row.split(","), strict=False))
        if values.get("pxname") == "uppers" and values["svname"].startswith("u"):
            states[values["svname"]] = values["status"]
    return states


async def wait_for_state(stats: Path, server: str, state: str, timeout: float = 15) -> None:
    """Poll HAProxy's stats socket: its health checks are the only source of this state
    (HAProxy signals nothing when it changes), so this wait is a bounded poll."""
    async with asyncio.timeout(timeout):
        while (await server_states(stats)).get(server) != state:
            await asyncio.sleep(0.05)


@contextlib.contextmanager
def running(instances: list[Instance]) -> Iterator[None]:
    try:
        yield
    finally:
        for instance in instances:
            instance.stop()


async def test_haproxy_proxy_v2_kill_and_rolling_restart(tmp_path: Path) -> None:
    instances = [Instance(host, tmp_path / f"u{n}.log") for n, host in enumerate(ADDRESSES, 1)]
    frontend = socket.create_server(("127.0.0.1", 0))
    stats = tmp_path / "haproxy.sock"
    with running(instances), frontend:
        for instance in instances:
            await asyncio.to_thread(instance.start)
        config = tmp_path / "haproxy.cfg"
        backends = [(i.host, i.port, i.health) for i in instances]
        config.write_text(haproxy_config(frontend.fileno(), stats, backends))
        with open(tmp_path / "haproxy.log", "w") as haproxy_log:
            haproxy = subprocess.Popen(
                ["haproxy", "-f", str(config), "-db"],
                pass_fds=(frontend.fileno(),),
                stdout=haproxy_log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            # HAProxy announces nothing when it is ready but its stats socket appearing:
            # a foreign process's file, so a bounded poll.
            async with asyncio.timeout(15):
                while not stats.exists():
                    assert haproxy.poll() is None, (tmp_path / "haproxy.log").read_text()
                    await asyncio.sleep(0.05)
            for n in (1, 2, 3):
                await wait_for_state(stats, f"u{n}", "UP")
            await scenario(instances, frontend.getsockname(), stats)
        finally:
            haproxy.send_signal(signal.SIGTERM)
            haproxy.wait(timeout=10)


async def scenario(instances: list[Instance], address: tuple[str, int], stats: Path) -> None:
    # 1. Steady state: every request served, spread over the three instances,
    #    each of which logs the real client (127.0.0.9), not HAProxy (127.0.0.1).
    load = Load(address)
    await asyncio.wait_for(load.run(limit=20), timeout=30)
    assert load.failed == []
    assert load.ok == 20 * CONCURRENCY
    for instance in instances:
        log = instance.log.read_text()
        seen = {
            int(p)
            for p in re.findall(rf"connection from {CLIENT_HOST}:(\d+) via 127\.0\.0\.1", log)
        }
        assert seen, f"{instance.host} served nobody: {log[-2000:]}"
        assert seen <= load.client_ports

    # 2. Kill one instance mid-load: only what was in flight there may fail.
    load = Load(address)
    task = load.run()
    async with asyncio.timeout(20):
        await load.served(100)
        await asyncio.to_thread(instances[1].stop, signal.SIGKILL)
        await wait_for_state(stats, "u2", "DOWN")
        await load.served(load.ok + 200)
        load.stop.set()
        await task
    print(f"kill: {load.ok} served, {len(load.failed)} failed (in flight on u2)")
    assert len(load.failed) <= CONCURRENCY, load.failed
    await asyncio.to_thread(instances[1].start)  # back on the same ports
    await wait_for_state(stats, "u2", "UP")

    # 3. Rolling restart of all three under load: SIGTERM (drain), exit 0, start
    #    again, wait until HAProxy sees it UP, next.  No request may fail.
    load = Load(address)
    task = load.run()
    async with asyncio.timeout(45):
        for n, instance in enumerate(instances, 1):
            before = load.ok
            assert instance.proc is not None
            instance.proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(instance.wait) == 0
            await asyncio.to_thread(instance.start)
            await wait_for_state(stats, f"u{n}", "UP")
            await load.served(before + 50)  # traffic flowed during this step
        load.stop.set()
        await task
    print(f"rolling restart: {load.ok} served, {len(load.failed)} failed")
    assert load.failed == []
    assert load.ok >= 150
