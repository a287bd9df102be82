"""``make demo``: each tutorial demo against its own local server, in one process.

    python -m asyncnet.demos.tour

Every stop starts its servers on ephemeral loopback ports, plays a scripted client
session and prints the exchange, so the whole tour runs offline and leaves nothing
behind.  Each stop is a short coroutine in :data:`STOPS`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import cast

from .. import DatagramClient, FramedClient, LineClient, run, tcp_server, udp_server
from ..byteorder import ip_from_bytes, ip_to_bytes, pack_u16, pack_u32
from ..chat import ChatRoom
from ..creosote import Bucket, Emitter, format_line, spew
from ..dns import DEFAULT_QUERIES, lookup_all, lookup_fqdn
from ..errors import AsyncNetError, format_peer
from . import _cli as cli
from .chat import Chat
from .echo import Echo
from .timeouts import PHASES
from .upper import Upper, UpperDatagram


async def upper_stop() -> None:
    """SockServTCP.py / SockServUDP.py: the upper-case service over TCP and UDP."""
    async with tcp_server(Upper) as tcp, udp_server(UpperDatagram) as udp:
        print(f"  servers: tcp://{format_peer(tcp.address)} udp://{format_peer(udp.address)}")
        async with await LineClient.connect(*tcp.address, timeout=5) as client:
            print(f"  TCP client {format_peer(client.local_address)}")
            for line in ("hello, world", "Network programming in Python", "LinuxWorld 2004"):
                print(f"    > {line}\n    < {await client.request(line)}")
            await client.send_line("")  # the tutorial's blank line ends the session
            print(f"    > (blank line)\n    < {await client.read_line()!r} (server closed)")
        async with await DatagramClient.connect(*udp.address, timeout=2) as dgram:
            print(f"  UDP client {format_peer(dgram.local_address)}")
            for text in (b"spam and eggs", b"Mr. Creosote"):
                print(f"    > {text!r}\n    < {await dgram.request(text)!r}")
    print(
        f"  tcp stats: {tcp.stats.connections_total} connection(s), "
        f"{tcp.stats.bytes_in} bytes in, {tcp.stats.bytes_out} bytes out"
    )


async def echo_stop() -> None:
    """The connection-oriented server and client: one message, one reply, close."""
    async with tcp_server(Echo) as server:
        async with await LineClient.connect(*server.address, timeout=5) as client:
            print(f"  client {format_peer(client.local_address)} -> {format_peer(client.peer)}")
            print(f"    > Hello world\n    < {await client.request('Hello world')}")
            print(f"    (then the server closes: {await client.read_line()!r})")


async def chat_stop() -> None:
    """The asynchat chat: each line goes to the others, with the speaker's nickname."""
    room = ChatRoom(handler_class=Chat)
    async with tcp_server(room.handler) as server:
        alice = await FramedClient.connect(*server.address, terminator=b"\n", timeout=5)
        bob = await FramedClient.connect(*server.address, terminator=b"\n", timeout=5)
        async with alice, bob:

            async def hear(name: str, client: FramedClient) -> None:
                print(f"    {name} < {(await client.read_frame() or b'').decode()}")

            async def say(name: str, client: FramedClient, text: str) -> None:
                print(f"    {name} > {text}")
                await client.send_frame(text.encode())

            await hear("alice", alice)
            await hear("bob  ", bob)
            await hear("alice", alice)
            await say("alice", alice, "/nick alice")
            await hear("alice", alice)
            await hear("bob  ", bob)
            await say("bob  ", bob, "hello, alice")
            await hear("alice", alice)
            await say("alice", alice, "/who")
            await hear("alice", alice)
            await say("alice", alice, "/quit")
            await hear("alice", alice)
            await hear("bob  ", bob)


async def byteorder_stop() -> None:
    """Network byte order: struct packing, inet_aton/ntoa and inet_pton/ntop."""
    print(
        f"  pack_u16(0x1234) = {pack_u16(0x1234).hex(' ')}, "
        f"pack_u32(0x12345678) = {pack_u32(0x12345678).hex(' ')}"
    )
    for address in ("192.0.2.10", "2001:db8::1"):
        packed = ip_to_bytes(address)
        print(f"  {address} -> {packed.hex(' ')} -> {ip_from_bytes(packed)}")


async def dns_stop() -> None:
    """DNS helpers, asynchronous and bounded: forward and reverse lookups side by side."""
    fqdn, answers = await asyncio.gather(
        lookup_fqdn(timeout=2), lookup_all([*DEFAULT_QUERIES, "nosuch.invalid"], timeout=2)
    )
    note = f" ({fqdn.note})" if fqdn.note else ""
    print(f"  FQDN: {fqdn.results[0] + note if fqdn.ok else f'error: {fqdn.error}'}")
    for answer in answers:
        print(f"  {answer.line(14)}")


async def timeouts_stop() -> None:
    """Timeouts: each phase ends with an error naming the peer and the phase."""
    for title, phase in PHASES:
        try:
            await phase(0.2)
            print(f"  {title}: no error")
        except AsyncNetError as exc:
            print(f"  {title}: {exc}")


async def creosote_stop() -> None:
    """creosote.py / creosoteplus.py: debug messages over UDP, whoever listens."""
    async with Bucket(port=0) as bucket:
        port = bucket.address[1]
        print(f"  bucket: udp://{format_peer(bucket.address)}")
        await spew("Mr. Creosote: just the one wafer-thin mint", port=port)
        await spew("hostile \x1b[2J\x00 bytes are shown escaped", port=port)
        async with Emitter(port=port, framed=True) as emitter:
            await emitter.spew("a long report. " * 200)  # 3000 bytes: 3 framed chunks
        async with asyncio.timeout(5):
            for _ in range(3):
                message = await anext(aiter(bucket))
                line = format_line(message)
                shown = line if len(line) < 90 else f"{line[:70]}... ({len(message.data)} bytes)"
                print(f"    {shown}  [{message.chunks} chunk(s)]")
    async with Emitter(port=port) as emitter:  # the bucket has gone: nobody listens now
        for n in range(3):
            emitter.emit(f"into the void {n}")
        async with asyncio.timeout(5):  # the ICMP error arrives on its own schedule
            while not emitter.stats.refused:  # noqa: ASYNC110 - a counter, not an event
                await asyncio.sleep(0.01)
    print(
        f"  no bucket: {emitter.stats.messages} messages spewed, no error raised, "
        f"{emitter.stats.refused} 'port unreachable' counted"
    )


async def mail_stop() -> None:
    """sendmail and poplib: three recipients (one refused), read back over POP3."""
    from ..mail import LocalMailServer, POP3Client, RecipientsRefused, make_message, send_message

    async with LocalMailServer({"demo": "demo", "alice": "wonderland"}) as mail:
        print(f"  SMTP {format_peer(mail.smtp_address)}, POP3 {format_peer(mail.pop3_address)}")
        to = ["demo@localhost", "alice@localhost", "nobody@localhost"]
        message = make_message(sender="steve@localhost", recipients=to, subject="Hi", body="x\n")
        refused = await send_message(message, port=mail.smtp_address[1], timeout=5)
        print(f"  sendmail to {len(to)}: refused {refused}")
        try:
            await send_message(message, recipients=["nobody@localhost"], port=mail.smtp_address[1])
        except RecipientsRefused as exc:
            print(f"  sendmail to nobody only: {type(exc).__name__}: {exc.refused}")
        await mail.wait_for_deliveries(2)
        async with POP3Client(*mail.pop3_address, timeout=5) as pop:
            print(f"  POP3 login demo: {await pop.login('demo', 'demo')}")
            for number, size in (await pop.list()).items():
                head = (await pop.top(number, 0)).decode()
                subject = next(h for h in head.splitlines() if h.startswith("Subject:"))
                uid = (await pop.uidl(number))[number]
                print(f"    #{number} {size} bytes, UIDL {uid[:24]}..., {subject}")
                await pop.dele(number)
        async with POP3Client(*mail.pop3_address, timeout=5) as pop:
            await pop.login("demo", "demo")
            print(f"  after DELE and QUIT: STAT {await pop.stat()}")


async def web_stop() -> None:
    """SimpleHTTPServer, CGI, urllib and htmllib: serve a site, fetch it, post the form, crawl."""
    import re
    import tempfile
    from pathlib import Path

    from ..web import Client, Request, crawl, web_server
    from .web import sample_site

    with tempfile.TemporaryDirectory(prefix="asyncnet-tour-") as scratch:
        async with web_server(sample_site(Path(scratch)), port=0, cgi=True) as server:
            print(f"  serving the sample site on {server.url}")
            async with Client(timeout=10) as client:
                page = await client.fetch(server.url)
                print(f"  GET / -> {page.status} {page.headers['Content-Type']}")
                form = {"subnum": "42", "reviewer": "<b>Steve</b>", "comments": "spam & eggs"}
                for path in ("cgi-bin/sample.py", "form"):
                    reply = await client.fetch(Request(server.url + path, data=form))
                    body = reply.text().split("<body", 1)[1].split("</body>")[0]
                    fields = re.sub(r"<[^>]*>", " ", "<" + body).split()
                    print(f"  POST /{path} -> {reply.status}: {' '.join(fields)}")
            report = await crawl(server.url, max_pages=20, concurrency=3)
            print(f"  crawl: {len(report.pages)} pages, broken: {[b.url for b in report.broken]}")


class _BareUpper(asyncio.Protocol):
    """The hand-written reference: split in ``data_received``, one write per read."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        lines = (self._buf + data).split(b"\n")
        self._buf = lines.pop()
        if lines and self._transport is not None:
            self._transport.write(b"".join([line.upper() + b"\n" for line in lines]))


class _PingPong(asyncio.Protocol):
    """One client: send a 64-byte line, wait for as many bytes back, send the next."""

    LINE = b"x" * 63 + b"\n"

    def __init__(self, latencies: list[int]) -> None:
        self.latencies = latencies
        self.running = True
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self._pending = 0
        self._sent = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self._pending = len(self.LINE)
        self._sent = time.perf_counter_ns()
        self.transport.write(self.LINE)

    def data_received(self, data: bytes) -> None:
        self._pending -= len(data)
        if self._pending <= 0:
            self.latencies.append(time.perf_counter_ns() - self._sent)
            if self.running:
                self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _pingpong(host: str, port: int, connections: int, seconds: float) -> tuple[float, float]:
    """req/s and p99 latency (ms) of ``connections`` ping-pong clients over ``seconds``."""
    loop = asyncio.get_running_loop()
    latencies: list[int] = []
    clients: list[_PingPong] = []
    try:
        for _ in range(connections):
            _, client = await loop.create_connection(lambda: _PingPong(latencies), host, port)
            clients.append(client)
        await asyncio.sleep(0.05)  # unmeasured: the first replies pay for warming up
        latencies.clear()
        started = time.perf_counter()
        await asyncio.sleep(seconds)  # the measured window
        elapsed = time.perf_counter() - started
        measured = sorted(latencies)
    finally:
        for client in clients:
            client.running = False
            if client.transport is not None:
                client.transport.close()
        async with asyncio.timeout(5):
            await asyncio.gather(*(client.closed for client in clients))
    p99 = measured[(99 * len(measured) - 1) // 100] / 1e6 if measured else 0.0  # nearest rank
    return len(measured) / elapsed, p99


async def bench_stop() -> None:
    """Comparing against threaded versions: a taste of `make bench`, in one process."""
    loop = asyncio.get_running_loop()
    bare = await loop.create_server(_BareUpper, "127.0.0.1", 0)
    async with bare, tcp_server(Upper) as tcp:
        for name, (host, port) in (
            ("asyncnet LineHandler", tcp.address),
            ("bare asyncio Protocol", bare.sockets[0].getsockname()[:2]),
        ):
            rps, p99 = await _pingpong(host, port, connections=10, seconds=0.3)
            print(
                f"  {name:21} {rps:8,.0f} req/s, p99 {p99:.2f} ms"
                " (10 connections, 64-byte lines, 0.3 s)"
            )
    print(
        "  client and servers share this process here; `make bench` runs each server"
        "\n  (threaded, forking, asyncio, uvloop, 2 workers) and the load generator in"
        " processes of their own"
    )


async def ftp_stop() -> None:
    """ftplib's retrbinary/retrlines/storbinary, async: an aioftp server on loopback."""
    import hashlib
    import logging
    import os
    import tempfile
    from pathlib import Path

    from ..ftp import FTPClient, FTPServer

    logging.getLogger("aioftp").setLevel(logging.CRITICAL)  # it logs every hang-up
    with tempfile.TemporaryDirectory(prefix="asyncnet-tour-ftp-") as tmp:
        root, data = Path(tmp), os.urandom(1 << 20)
        (root / "notes.txt").write_text("retrlines: one call per line\nlike ftplib\n")
        async with FTPServer(root, users={"tour": "tour"}) as server:
            print(f"  server: ftp://{format_peer(server.address)} over a temporary directory")
            async with FTPClient(*server.address, user="tour", password="tour") as ftp:
                await ftp.retrieve_lines("notes.txt", lambda line: print(f"    | {line}"))
                print(f"  storbinary: {await ftp.store('data.bin', data):,} bytes stored")
                chunks: list[bytes] = []
                await ftp.retrieve("data.bin", chunks.append)
                print(f"  retrbinary: {len(chunks)} chunks to a callback, same bytes:", end=" ")
                print(b"".join(chunks) == data)
                got = await ftp.download("data.bin", root / "copy.bin")
                print("  download via copy.bin.part, checked against SIZE: sha256", end=" ")
                print(f"{got.sha256[:16]} ({got.sha256 == hashlib.sha256(data).hexdigest()})")
                names = ", ".join(sorted(entry.name for entry in await ftp.list()))
                print(f"  MLSD listing: {names}")


async def office_stop() -> None:
    """Mail, FTP and web clients at once on one loop (python -m asyncnet.demos.office)."""
    import argparse
    import tempfile
    from pathlib import Path

    from .office import office

    sizes = {"files": 3, "size_kib": 256, "messages": 3, "pages": 6, "throttle": 0}
    with tempfile.TemporaryDirectory(prefix="asyncnet-tour-") as scratch:
        args = argparse.Namespace(plain=True, **sizes)
        await office(args, Path(scratch) / "downloads", Path(scratch))


STOPS: list[tuple[str, Callable[[], Awaitable[None]]]] = [
    ("upper", upper_stop),
    ("echo", echo_stop),
    ("chat", chat_stop),
    ("creosote", creosote_stop),
    ("byteorder", byteorder_stop),
    ("dns", dns_stop),
    ("timeouts", timeouts_stop),
    ("mail", mail_stop),
    ("ftp", ftp_stop),
    ("web", web_stop),
    ("bench", bench_stop),
    ("office", office_stop),
]
"""The tour, in order: (name, coroutine function)."""


async def tour() -> None:
    """Run every stop of the tour in turn."""
    for name, stop in STOPS:
        print(f"== {name}: {(stop.__doc__ or '').strip()}")
        await stop()
        print()


def main(argv: list[str] | None = None) -> int:
    """Run the tour (uvloop when installed)."""
    parser = cli.parser("python -m asyncnet.demos.tour", __doc__)

    def body(args: argparse.Namespace) -> int:
        run(tour())
        return 0

    return cli.main(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
