"""Embedding: the upper servers inside somebody else's asyncio program.

    python -m asyncnet.demos.embedding

The "application" here has its own work (a heartbeat task and a few clients);
the servers start and stop inside it with ``async with``.  Nothing here owns the
process: no ``serve_forever()``, no signal handling, no loop of our own.
"""

from __future__ import annotations

import argparse
import asyncio

from .. import DatagramClient, LineClient, tcp_server, udp_server
from . import _cli as cli
from .upper import Upper, UpperDatagram


async def heartbeat(beats: int, interval: float) -> int:
    """The application's own background work: a bounded heartbeat."""
    for n in range(1, beats + 1):
        print(f"app: heartbeat {n}")
        await asyncio.sleep(interval)
    return beats


async def application() -> None:
    """An existing asyncio program that also serves the upper protocol."""
    async with tcp_server(Upper, port=0) as tcp, udp_server(UpperDatagram, port=0) as udp:
        print(f"app: upper on tcp {tcp.address} and udp {udp.address}")
        async with asyncio.TaskGroup() as group:
            beats = group.create_task(heartbeat(3, 0.05))
            async with await LineClient.connect(*tcp.address) as client:
                print("app: tcp says", await client.request("embedded in your loop"))
            async with await DatagramClient.connect(*udp.address) as dgram:
                print("app: udp says", (await dgram.request(b"and over udp")).decode())
        print(
            f"app: {beats.result()} heartbeats; servers saw "
            f"{tcp.stats.connections_total} connection(s), {udp.stats.datagrams_in} datagram(s)"
        )
    print("app: servers closed; the application carries on and exits normally")


def main(argv: list[str] | None = None) -> int:
    """Run the application (plain ``asyncio.run``: the application owns the loop)."""
    parser = cli.parser("python -m asyncnet.demos.embedding", __doc__)

    def body(args: argparse.Namespace) -> int:
        asyncio.run(application())
        return 0

    return cli.main(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
