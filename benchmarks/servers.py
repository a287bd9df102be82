"""Reference upper servers the benchmark compares asyncnet with, one per process.

    python -m benchmarks.servers protocol [--uvloop]   # bare asyncio Protocol
    python -m benchmarks.servers streams [--uvloop]    # the naive streams rewrite
    python -m benchmarks.servers asyncnet-workers --workers 2

Each serves the upper service over TCP and UDP on 127.0.0.1 (``--port 0`` by
default) and prints ``listening on tcp://127.0.0.1:P udp://127.0.0.1:Q``.  The bare
servers are what a careful programmer writes by hand: ``data_received`` + split +
one ``write()`` per read, and one ``sendto()`` per datagram.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from asyncnet import (
    catch_signals,
    run,
    run_workers,
    tcp_server,
    udp_server,
)
from asyncnet.demos.upper import Upper, UpperDatagram
from asyncnet.errors import format_peer
from asyncnet.servers import ServerBase

__all__ = ["BareUpper", "BareUpperDatagram", "main"]


class BareUpper(asyncio.Protocol):
    """The hand-written reference: split in ``data_received``, one write per read."""

    __slots__ = ("_buf", "_transport")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport: Any = transport
        self._buf = b""

    def data_received(self, data: bytes) -> None:
        if self._buf:
            data = self._buf + data
        lines = data.split(b"\n")
        self._buf = lines.pop()
        if lines:
            self._transport.write(b"".join([line.upper() + b"\n" for line in lines]))


class BareUpperDatagram(asyncio.DatagramProtocol):
    """One ``sendto()`` per datagram, as asyncio's documentation shows."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport: Any = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._transport.sendto(data.upper(), addr)


async def _streams_upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def _announce(tcp: Any, udp: Any) -> None:
    print(f"listening on tcp://{format_peer(tcp)} udp://{format_peer(udp)}", flush=True)


async def _serve_bare(kind: str, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    if kind == "protocol":
        server = await loop.create_server(BareUpper, host, port, backlog=128)
    else:
        server = await asyncio.start_server(_streams_upper, host, port, backlog=128)
    transport, _ = await loop.create_datagram_endpoint(BareUpperDatagram, local_addr=(host, port))
    with catch_signals() as stopped:  # before the announcement: see catch_signals()
        async with server:
            _announce(server.sockets[0].getsockname(), transport.get_extra_info("sockname"))
            try:
                await stopped
            finally:
                transport.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one reference server until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.servers")
    parser.add_argument("kind", choices=["protocol", "streams", "asyncnet-workers"])
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="asyncnet-workers: processes")
    args = parser.parse_args(argv)
    if args.kind in ("protocol", "streams"):
        with contextlib.suppress(KeyboardInterrupt):
            run(_serve_bare(args.kind, args.host, args.port), use_uvloop=args.uvloop)
        return 0

    def ready(servers: Sequence[ServerBase]) -> None:
        _announce(servers[0].address, servers[1].address)

    servers = (
        tcp_server(Upper, host=args.host, port=args.port),
        udp_server(UpperDatagram, host=args.host, port=args.port),
    )
    return run_workers(*servers, workers=args.workers, ready=ready, use_uvloop=args.uvloop)


if __name__ == "__main__":
    raise SystemExit(main())
