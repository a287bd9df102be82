"""The tutorial's "Timeout Capabilities" slide: never wait forever, and say what timed out.

    python -m asyncnet.demos.timeouts                 # every phase, 0.5 s limits
    python -m asyncnet.demos.timeouts --timeout 0.2

Each phase runs on loopback against something this demo sets up itself, and prints
the error it ends with, naming the peer and the phase: a closed port, a listener
whose backlog is full (the connect is never answered), a server that never
replies, a slow server under a whole-session deadline, and a UDP server that
never replies (retries with backoff, then NoResponse).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from .. import (
    AsyncNetError,
    DatagramClient,
    DatagramHandler,
    LineClient,
    LineHandler,
    StreamHandler,
    run,
    tcp_server,
    udp_server,
)
from ..clients import FramedClient
from . import _cli as cli


class Silent(StreamHandler):
    """Accepts the connection, reads what comes, never answers."""

    async def handle(self) -> None:
        while await self.reader.read(4096):
            pass


class Slow(LineHandler):
    """Answers every line, after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def handle_line(self, line: str) -> str:
        await asyncio.sleep(self.delay)
        return line


class Deaf(DatagramHandler):
    """Notes when each datagram arrives; never replies."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []

    def handle(self, data: bytes, addr: object) -> None:
        self.arrivals.append(asyncio.get_running_loop().time())


async def closed_port(timeout: float) -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:  # bound, then closed: nobody listens
        address = sock.getsockname()
    await LineClient.connect(*address, timeout=timeout)


async def backlog_full(timeout: float) -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:  # never accept()s
        with socket.create_connection(listener.getsockname()):  # takes the only queue slot
            await LineClient.connect(*listener.getsockname(), timeout=timeout)


async def never_answers(timeout: float) -> None:
    async with tcp_server(Silent) as server:
        async with await LineClient.connect(*server.address, timeout=timeout) as client:
            await client.request("hello?")


async def slow_session(timeout: float) -> None:
    async with tcp_server(lambda: Slow(0.6 * timeout)) as server:  # each reply is in time...
        client = await FramedClient.connect(*server.address, terminator=b"\n", timeout=timeout)
        async with client, client.deadline(2 * timeout, "session"):  # ...five are not
            for n in range(5):
                await client.request(b"request %d" % n)


async def udp_backoff(timeout: float) -> None:
    deaf = Deaf()
    async with udp_server(deaf) as server:
        client = await DatagramClient.connect(*server.address, timeout=timeout / 2, retries=2)
        try:
            async with client:
                await client.request(b"anybody there?")
        finally:
            times = ", ".join(f"{t - deaf.arrivals[0]:.2f} s" for t in deaf.arrivals)
            print(f"  (the server saw attempts at {times})")


PHASES: list[tuple[str, Callable[[float], Awaitable[None]]]] = [
    ("connect to a closed port", closed_port),
    ("connect while the backlog is full", backlog_full),
    ("a server that never answers", never_answers),
    ("five slow replies, one deadline", slow_session),
    ("UDP: 3 attempts, backoff x2", udp_backoff),
]


async def phases(timeout: float) -> int:
    """Run every phase; each should end with a clear error."""
    for title, phase in PHASES:
        print(f"{title}:", flush=True)
        try:
            await phase(timeout)
            print("  finished without an error", flush=True)
        except AsyncNetError as exc:
            print(f"  {type(exc).__name__}: {exc}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the phases with --timeout seconds per step."""
    parser = cli.parser("python -m asyncnet.demos.timeouts", __doc__)
    parser.add_argument(
        "--timeout", type=cli.positive_float, default=0.5, help="seconds (default 0.5)"
    )
    return cli.main(parser, lambda args: run(phases(args.timeout)), argv)


if __name__ == "__main__":
    raise SystemExit(main())
