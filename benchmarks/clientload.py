"""The client-side comparison's two processes: the loopback servers, and one client run.

``python -m benchmarks.clientload serve ROOT --workload JSON`` starts, on one
event loop, a minimal POP3 server (N mailboxes of M messages, read-only so every run
sees the same mail), aiosmtpd (accepts and discards), aioftp over ROOT/ftp and an
aiohttp static server over ROOT/www, prints their ports as one JSON line and serves
until its stdin closes.

``python -m benchmarks.clientload run MODE --ports JSON --workload JSON --out DIR``
does the whole mixed workload once and prints one JSON line: wall time, RSS after
imports, peak RSS, threads.  MODE is ``sequential`` or ``threads`` (the blocking
stdlib clients: poplib, smtplib, ftplib, urllib.request) or ``asyncnet`` (asyncnet's
mail, FTP and web clients on one event loop).  Each run is a fresh process, so the
memory and thread numbers are that run's alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .workload import (
    HOST,
    PASSWORD,
    Workload,
    message_bytes,
    prepare_root,
    result_of,
    status_field,
)

__all__ = ["main", "run_blocking", "serve"]


def dot_stuff(message: bytes) -> bytes:
    """``message`` (CRLF lines) as RETR sends it: leading dots doubled, then ``.`` CRLF."""
    lines = message.removesuffix(b"\r\n").split(b"\r\n")
    stuffed = [b"." + line if line.startswith(b".") else line for line in lines]
    return b"\r\n".join([*stuffed, b".", b""])


# -- the servers -----------------------------------------------------------------------


class _POP3(asyncio.Protocol):
    """Just enough POP3 (RFC 1939) for the workload: USER PASS STAT LIST RETR NOOP QUIT."""

    def __init__(self, boxes: list[list[bytes]]) -> None:
        self.boxes, self.user, self.buffer = boxes, "", b""
        self.box: list[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"+OK bench POP3 ready\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, _, self.buffer = self.buffer.partition(b"\n")
            verb, _, arg = line.decode("ascii", "replace").strip().partition(" ")
            verb = verb.upper()
            box = self.box
            if verb == "USER":
                self.user, reply = arg, b"+OK"
            elif verb == "PASS" and self.user.startswith("box") and arg == PASSWORD:
                index = int(self.user[3:])
                self.box = box = self.boxes[index] if index < len(self.boxes) else None
                reply = b"+OK logged in" if box is not None else b"-ERR no such mailbox"
            elif verb == "QUIT":
                self.transport.write(b"+OK bye\r\n")
                self.transport.close()
                return
            elif box is None:
                reply = b"-ERR log in first"
            elif verb == "STAT":
                reply = b"+OK %d %d" % (len(box), sum(map(len, box)))
            elif verb == "LIST":
                sizes = b"".join(b"%d %d\r\n" % (n, len(m)) for n, m in enumerate(box, 1))
                reply = b"+OK\r\n" + sizes + b"."
            elif verb == "RETR" and arg.isdigit() and 1 <= int(arg) <= len(box):
                self.transport.write(b"+OK\r\n" + dot_stuff(box[int(arg) - 1]))
                continue
            elif verb == "NOOP":
                reply = b"+OK"
            else:
                reply = b"-ERR unsupported"
            self.transport.write(reply + b"\r\n")


class _Discard:
    """aiosmtpd handler: accept every message, keep nothing (the sends are measured)."""

    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received += 1
        return "250 OK"


async def serve(root: Path, workload: Workload) -> None:
    """Start the four servers, print their ports, serve until stdin closes."""
    import aioftp
    from aiohttp import web
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    boxes = [
        [message_bytes(b, n) for n in range(workload.messages)] for b in range(workload.mailboxes)
    ]
    pop3 = await loop.create_server(lambda: _POP3(boxes), HOST, 0)
    handler = _Discard()
    smtp = await loop.create_server(lambda: SMTP(handler, loop=loop), HOST, 0)
    user = aioftp.User(
        "bench", PASSWORD, base_path=root / "ftp", permissions=[aioftp.Permission("/")]
    )
    ftp = aioftp.Server([user], maximum_connections=1024)
    await ftp.start(HOST, 0)
    app = web.Application()
    app.router.add_static("/", root / "www")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    ports = {
        "pop3": pop3.sockets[0].getsockname()[1],
        "smtp": smtp.sockets[0].getsockname()[1],
        "ftp": ftp.server.sockets[0].getsockname()[1],
        "http": runner.addresses[0][1],
    }
    print(json.dumps(ports), flush=True)
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    try:
        await stdin_closed
    finally:
        await runner.cleanup()
        await ftp.close()
        for server in (pop3, smtp):
            server.close()


# -- the client runs -------------------------------------------------------------------


def _blocking_jobs(ports: dict[str, int], w: Workload, out: Path) -> list[Callable[[], int]]:
    """The workload as blocking stdlib calls, one callable per job; each returns bytes read."""
    import email
    import email.policy
    import ftplib
    import poplib
    import smtplib
    import urllib.request

    def mailbox(box: int) -> int:
        pop = poplib.POP3(HOST, ports["pop3"], timeout=30)
        pop.user(f"box{box}")
        pop.pass_(PASSWORD)
        total = 0
        for entry in pop.list()[1]:
            lines = pop.retr(int(entry.split()[0]))[1]
            message = email.message_from_bytes(b"\r\n".join(lines), policy=email.policy.default)
            total += sum(len(line) + 2 for line in lines) if message["Subject"] else 0
        pop.quit()
        return total

    def send(box: int) -> int:
        with smtplib.SMTP(HOST, ports["smtp"], timeout=30) as smtp:
            data = message_bytes(box, 0)
            smtp.sendmail("sender@localhost", [f"box{box}@localhost"], data)
        return len(data)

    def download(k: int) -> int:
        ftp = ftplib.FTP()
        ftp.connect(HOST, ports["ftp"], timeout=30)
        ftp.login("bench", PASSWORD)
        with open(out / f"file{k}.bin", "wb") as f:
            ftp.retrbinary(f"RETR file{k}.bin", f.write)
        ftp.quit()
        return (out / f"file{k}.bin").stat().st_size

    def page(p: int) -> int:
        url = f"http://{HOST}:{ports['http']}/page{p}.html"
        with urllib.request.urlopen(url, timeout=30) as response:
            return len(response.read())

    return [
        *(lambda b=b: mailbox(b) for b in range(w.mailboxes)),
        *(lambda b=b: send(b) for b in range(w.mailboxes)),
        *(lambda k=k: download(k) for k in range(w.files)),
        *(lambda p=p: page(p) for p in range(w.pages)),
    ]


def run_blocking(mode: str, ports: dict[str, int], w: Workload, out: Path) -> dict[str, Any]:
    """Sequentially, or with a pool of ``w.concurrency`` threads."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = _blocking_jobs(ports, w, out)
    rss_before = status_field("VmRSS")
    started = time.perf_counter()
    if mode == "sequential":
        done = [job() for job in jobs]
        threads = status_field("Threads")
    else:
        with ThreadPoolExecutor(w.concurrency) as pool:
            done = list(pool.map(lambda job: job(), jobs))
            threads = status_field("Threads")  # the pool's threads live until shutdown
    return result_of(started, rss_before, threads, done)


def main(argv: list[str] | None = None) -> int:
    """``serve`` the servers or ``run`` one client mode (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.clientload")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the loopback servers")
    serve_cmd.add_argument("root", type=Path)
    serve_cmd.add_argument("--workload", required=True)
    run_cmd = commands.add_parser("run", help="do the workload once")
    run_cmd.add_argument("mode", choices=["sequential", "threads", "asyncnet"])
    run_cmd.add_argument("--ports", required=True)
    run_cmd.add_argument("--workload", required=True)
    run_cmd.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    workload = Workload(**json.loads(args.workload))
    if args.command == "serve":
        prepare_root(args.root, workload)
        asyncio.run(serve(args.root, workload))
        return 0
    ports = json.loads(args.ports)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.mode == "asyncnet":
        # Imported only here: the blocking runs' memory must not include asyncnet's.
        from .clientasync import run_asyncnet

        result = run_asyncnet(ports, workload, args.out)
    else:
        result = run_blocking(args.mode, ports, workload, args.out)
    result["workload"] = asdict(workload)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
