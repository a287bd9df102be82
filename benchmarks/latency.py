"""A delaying TCP proxy: network latency on loopback, where the kernel has no ``netem``.

One :class:`DelayProxy` listens on loopback in front of one server and forwards every
connection to it, holding each chunk for ``rtt / 2`` in each direction.  Each direction
is a timestamped queue: a chunk read at ``t`` is written at ``t + rtt / 2`` however many
chunks are ahead of it, so order is kept and throughput is not capped by the delay (a
writer that slept ``rtt / 2`` per chunk would be).  What a real path costs and the proxy
models:

* the TCP handshake: the server's ``accept()`` happens ``1.5 * rtt`` after the client's
  ``connect()`` (SYN, SYN-ACK, ACK), so the first reply of a server that speaks first
  arrives after ``2 * rtt``, and the first reply to a client that speaks first too;
* every later byte, and the close (FIN) in each direction, ``rtt / 2`` late;
* FTP data connections (``ftp=True``): the proxy reads the control connection's replies,
  and for each ``227`` (PASV) or ``229`` (EPSV) opens a delaying listener of its own in
  front of the port the server named and rewrites the reply to name it instead, as a
  NAT's FTP helper does.  Active mode (PORT/EPRT) is not proxied: the server would
  connect straight to the client, without delay.

Not modelled: slow start, a bandwidth limit, loss.  At most ``limit`` bytes wait in a
direction (4 MiB, about what Linux lets a socket buffer grow to); a full queue stops
reading, which the sender sees as a full window.

    python -m benchmarks.latency --rtt 20 --ports '{"web": 8080, "ftp": 2121}' --ftp ftp

prints ``{"web": P1, "ftp": P2}``, the proxies' ports, as one JSON line and forwards until
its stdin closes.  :mod:`benchmarks.clients` runs it in front of its servers.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import re
import socket
import struct
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

__all__ = ["DEFAULT_LIMIT", "DelayProxy", "main", "serve"]

DEFAULT_LIMIT = 4 * 1024 * 1024
"""Bytes that may wait in one direction before the proxy stops reading."""
_READ = 256 * 1024
_PASV = re.compile(rb"^227 (.*?)(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)(.*)$", re.DOTALL)
_EPSV = re.compile(rb"^229 (.*?)\((.)\2\2(\d+)\2\)(.*)$", re.DOTALL)
_UNUSED_DATA_LISTENER_S = 60.0
"""How long a data listener waits for the client before it closes unused."""

Rewrite = Callable[[bytes], Awaitable[bytes]]


class _DelayLine:
    """One direction: chunks stamped when read, written when their time comes, in order."""

    def __init__(self, delay: float, limit: int) -> None:
        self.delay, self.limit = delay, limit
        self.queue: collections.deque[tuple[float, bytes | None]] = collections.deque()
        self.queued = 0
        self.ready = asyncio.Event()  # something in the queue
        self.room = asyncio.Event()  # below the limit
        self.room.set()

    async def put(self, stamp: float, chunk: bytes | None) -> None:
        """Queue ``chunk`` (``None``: EOF) read at ``stamp``; waits while the queue is full."""
        while self.queued >= self.limit:
            self.room.clear()
            await self.room.wait()
        self.queue.append((stamp + self.delay, chunk))
        self.queued += len(chunk or b"")
        self.ready.set()

    async def drain_to(self, writer: asyncio.StreamWriter) -> None:
        """Write each chunk at its time, ending with ``write_eof`` after the EOF marker."""
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.ready.clear()
                await self.ready.wait()
            due = self.queue[0][0] - loop.time()
            if due > 0:
                await asyncio.sleep(due)
            # Everything due by now leaves in one go: late chunks are not delayed twice.
            now, out, eof = loop.time(), [], False
            while self.queue and self.queue[0][0] <= now:
                _, chunk = self.queue.popleft()
                if chunk is None:
                    eof = True
                    break
                out.append(chunk)
                self.queued -= len(chunk)
            if out:
                writer.write(b"".join(out))
            if self.queued < self.limit:
                self.room.set()
            if eof:
                if writer.can_write_eof():
                    writer.write_eof()
                await writer.drain()
                return
            await writer.drain()


class DelayProxy:
    """Forward connections on ``host`` to ``upstream``, ``rtt`` seconds per round trip."""

    def __init__(
        self,
        upstream: tuple[str, int],
        rtt: float,
        *,
        ftp: bool = False,
        host: str = "127.0.0.1",
        limit: int = DEFAULT_LIMIT,
        one_shot: bool = False,
    ) -> None:
        if rtt < 0:
            raise ValueError(f"rtt must be >= 0 seconds, not {rtt}")
        if limit < 1:
            raise ValueError(f"limit must be at least 1 byte, not {limit}")
        self.upstream, self.rtt, self.ftp, self.host, self.limit = upstream, rtt, ftp, host, limit
        self.one_shot = one_shot  # a data listener: one connection, then it closes
        self.connections = 0
        """Connections accepted so far."""
        self.passive_replies = 0
        """PASV/EPSV replies rewritten to name a delaying data listener (``ftp=True``)."""
        self._data: list[DelayProxy] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        """The port clients connect to (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("the proxy is not started: await start() first")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self, port: int = 0) -> int:
        """Listen (port 0: any free port) and return the port."""
        self._server = await asyncio.start_server(self._accepted, self.host, port)
        return self.port

    async def close(self) -> None:
        """Stop listening, drop every connection, close the data listeners."""
        if self._server is not None:
            self._server.close()
        for data in self._data:
            await data.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> DelayProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.one_shot and self._server is not None:
            self._server.close()
        task = asyncio.get_running_loop().create_task(self._forward(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(
        self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        accepted = loop.time()
        self._writers.add(c_writer)
        up = _DelayLine(self.rtt / 2, self.limit)
        down = _DelayLine(self.rtt / 2, self.limit)
        s_writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(_pump(c_reader, up))
                # The server accepts when the client's ACK would arrive: SYN, SYN-ACK, ACK.
                await asyncio.sleep(max(0.0, accepted + 1.5 * self.rtt - loop.time()))
                try:
                    s_reader, s_writer = await asyncio.open_connection(*self.upstream)
                except OSError:
                    _reset(c_writer)  # the client sees a reset, as from a refused port
                    raise
                self._writers.add(s_writer)
                group.create_task(up.drain_to(s_writer))
                group.create_task(_pump(s_reader, down, self._rewrite if self.ftp else None))
                group.create_task(down.drain_to(c_writer))
        except* (OSError, asyncio.IncompleteReadError):
            pass  # a reset or a refused upstream ends this connection, not the proxy
        finally:
            for writer in (c_writer, s_writer):
                if writer is not None:
                    self._writers.discard(writer)
                    writer.close()

    async def _rewrite(self, line: bytes) -> bytes:
        """A control reply naming a passive data port: name a delaying listener instead."""
        if match := _PASV.match(line):
            port = int(match[6]) * 256 + int(match[7])
            mine = await self._data_proxy(port)
            # The proxy listens where the server does, so the host the reply names stays.
            host = b",".join(match[i] for i in range(2, 6))
            return b"227 %s%s,%d,%d%s" % (match[1], host, mine // 256, mine % 256, match[8])
        if match := _EPSV.match(line):
            mine = await self._data_proxy(int(match[3]))
            bar = match[2]
            return b"229 %s(%s%s%s%d%s)%s" % (match[1], bar, bar, bar, mine, bar, match[4])
        return line

    async def _data_proxy(self, port: int) -> int:
        data = DelayProxy(
            (self.upstream[0], port), self.rtt, host=self.host, limit=self.limit, one_shot=True
        )
        # Finished data listeners are dropped, so a long session keeps no list of them.
        self._data = [d for d in self._data if d._tasks or d._serving()]
        self._data.append(data)
        mine = await data.start()
        self.passive_replies += 1
        loop = asyncio.get_running_loop()
        # A listener nobody connects to (the client gave up) must not stay open.
        loop.call_later(_UNUSED_DATA_LISTENER_S, data._close_if_unused)
        return mine

    def _serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    def _close_if_unused(self) -> None:
        if self.connections == 0 and self._server is not None:
            self._server.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (linger 0), as the kernel answers a SYN to a closed port."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _pump(
    reader: asyncio.StreamReader, line: _DelayLine, rewrite: Rewrite | None = None
) -> None:
    """Read until EOF (or a reset), stamping each chunk as it arrives."""
    loop = asyncio.get_running_loop()
    partial = b""
    try:
        while chunk := await reader.read(_READ):
            stamp = loop.time()
            if rewrite is not None:  # whole lines only: a reply may arrive in pieces
                lines = (partial + chunk).split(b"\n")
                partial = lines.pop()
                chunk = b"".join([await rewrite(one + b"\n") for one in lines])
                if not chunk:
                    continue
            await line.put(stamp, chunk)
    except ConnectionError:
        pass  # a reset is passed on as an EOF
    stamp = loop.time()
    if partial:
        await line.put(stamp, partial)
    await line.put(stamp, None)


# -- the command ------------------------------------------------------------------------


async def serve(
    ports: dict[str, int],
    rtt: float,
    ftp: Sequence[str] = (),
    host: str = "127.0.0.1",
    stop: Callable[[], Awaitable[Any]] | None = None,
) -> None:
    """A proxy in front of each of ``ports``; print their ports; forward until ``stop``."""
    proxies = {
        name: DelayProxy((host, port), rtt, ftp=name in ftp, host=host)
        for name, port in ports.items()
    }
    try:
        mine = {name: await proxy.start() for name, proxy in proxies.items()}
        print(json.dumps(mine), flush=True)
        if stop is None:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        else:
            await stop()
    finally:
        for proxy in proxies.values():
            await proxy.close()


def _ports(text: str) -> dict[str, int]:
    try:
        ports = json.loads(text)
    except ValueError:
        ports = None
    if (
        not isinstance(ports, dict)
        or not ports
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in ports.values())
        or not all(0 < p < 65536 for p in ports.values())
    ):
        raise argparse.ArgumentTypeError(
            f"--ports wants a JSON object of names to ports, such as '{{\"web\": 8080}}', "
            f"not {text!r}"
        )
    return {str(k): v for k, v in ports.items()}


def _rtt(text: str) -> float:
    try:
        ms = float(text)
    except ValueError:
        ms = -1.0
    if not 0 <= ms <= 10_000:
        raise argparse.ArgumentTypeError(f"--rtt wants milliseconds from 0 to 10000, not {text!r}")
    return ms


def main(argv: Sequence[str] | None = None) -> int:
    """Run delaying proxies in front of loopback servers until stdin closes."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.latency",
        description="Delaying TCP proxies on loopback: one per server, RTT/2 each way; "
        "prints their ports as JSON and forwards until stdin closes.",
    )
    parser.add_argument("--rtt", type=_rtt, required=True, help="round-trip time in ms")
    parser.add_argument(
        "--ports", type=_ports, required=True, help='the servers, as JSON: {"name": port, ...}'
    )
    parser.add_argument(
        "--ftp", action="append", default=[], metavar="NAME", help="an FTP server (repeatable)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        choices=["127.0.0.1", "::1"],
        help="where the servers listen and the proxies too (loopback only)",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.ftp if name not in args.ports]
    if unknown:
        parser.error(f"--ftp {unknown[0]!r} names no server in --ports")
    try:
        _run(serve(args.ports, args.rtt / 1000, args.ftp, args.host))
    except OSError as exc:
        print(f"latency proxy: cannot listen on {args.host}: {exc.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _run(main: Coroutine[Any, Any, None]) -> None:
    """On uvloop when installed: the proxy should cost the servers as little CPU as it can."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


if __name__ == "__main__":
    raise SystemExit(main())
