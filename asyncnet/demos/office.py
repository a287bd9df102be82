"""The office: mail, FTP and web clients at once on one event loop, with live progress.

    python -m asyncnet.demos.office                        # everything embedded, on loopback
    python -m asyncnet.demos.office --files 6 --size-kib 2048 --throttle 1024
    python -m asyncnet.demos.office --out ./downloads      # keep what was downloaded

One process, one loop, no thread per job.  It starts the local mail pair, an FTP
server over sample files, a web server over sample pages, the upper servers and a
creosote bucket that receives every component's log records; then, concurrently,
it sends mail and reads the mailbox back over POP3 (each message parsed), downloads
and uploads files over FTP, fetches and crawls the pages over HTTP, and keeps
asking the upper servers for capitals to show they keep answering.  A live display
shows each job's progress, and a summary gives the times.

Ctrl-C stops everything cleanly: downloads go to ``NAME.part`` and are renamed only
when complete, uploads likewise on the server, and partial files are removed, so
nothing half-written is ever left under its final name.  ``--throttle`` slows the
FTP server (KiB/s) to watch the bars move.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import DatagramClient, LineClient, catch_signals, run, tcp_server, udp_server
from ..creosote import Bucket, CreosoteHandler, Message
from ..errors import AsyncNetError
from . import _cli as cli
from .upper import Upper, UpperDatagram

# The mail, FTP and web packages (aiosmtpd, aioftp, aiohttp) load in the jobs that use
# them, not here: --help and a usage error answer without the three libraries.
if TYPE_CHECKING:
    from ..ftp import FTPClient, TransferProgress
    from ..mail import LocalMailServer

log = logging.getLogger("asyncnet.office")


@dataclass
class Job:
    """One line of the display: what it is, how far it got, how long it took."""

    name: str
    total: float | None = None
    done: float = 0
    detail: str = ""
    started: float = field(default_factory=time.monotonic)
    elapsed: float | None = None
    result: str = ""


class Board:
    """Every job's progress: a rich live display on a terminal, plain lines elsewhere."""

    def __init__(self, live: bool) -> None:
        self.jobs: list[Job] = []
        self.progress: Any = None
        self._tasks: dict[str, Any] = {}
        if live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description:<10}"),
                BarColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
            )

    @contextlib.contextmanager
    def shown(self) -> Iterator[Board]:
        """Draw the live display for the block (no-op for plain lines)."""
        if self.progress is None:
            yield self
            return
        with self.progress:
            yield self

    def say(self, text: str) -> None:
        """One line above the display (or on stdout)."""
        if self.progress is not None:
            self.progress.console.print(text)
        else:
            print(text, flush=True)

    def add(self, name: str, total: float | None) -> Job:
        """A new job line."""
        job = Job(name, total)
        self.jobs.append(job)
        if self.progress is not None:
            self._tasks[name] = self.progress.add_task(name, total=total, detail="")
        return job

    def update(self, job: Job, done: float, detail: str, total: float | None = None) -> None:
        """Move a job's bar."""
        job.done, job.detail = done, detail
        if total is not None:
            job.total = total
        if self.progress is not None:
            self.progress.update(
                self._tasks[job.name], completed=done, total=job.total, detail=detail
            )

    def finish(self, job: Job, result: str) -> None:
        """A job is done: its result and time."""
        job.elapsed, job.result = time.monotonic() - job.started, result
        self.update(job, job.total or job.done, result)
        log.info("%s: %s (%.2f s)", job.name, result, job.elapsed)
        if self.progress is None:
            print(f"office: {job.name} done: {result} ({job.elapsed:.2f} s)", flush=True)


@contextlib.contextmanager
def logs_to(port: int) -> Iterator[None]:
    """Send the asyncnet loggers' INFO records to the bucket; stderr keeps its level."""
    logger = logging.getLogger("asyncnet")
    level = logger.getEffectiveLevel()
    for existing in logger.handlers:  # -v decides what reaches the terminal, as before
        if existing.level == logging.NOTSET:
            existing.setLevel(level)
    handler = CreosoteHandler(port=port)
    logger.addHandler(handler)
    logger.setLevel(min(level, logging.INFO))
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


def make_directory(path: Path) -> None:
    """``mkdir -p``."""
    path.mkdir(parents=True, exist_ok=True)


def remove_partials(out: Path) -> None:
    """An interrupted download and its resume note: not kept under any name."""
    for pattern in ("*.part", "*.part.json"):
        for part in out.glob(pattern):
            part.unlink()


def sample_files(root: Path, count: int, size: int, prefix: str) -> list[Path]:
    """``count`` files of random bytes under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    paths = [root / f"{prefix}{n}.bin" for n in range(1, count + 1)]
    for path in paths:
        path.write_bytes(os.urandom(size))
    return paths


def sample_pages(root: Path, count: int) -> None:
    """An index and ``count`` pages linking to each other (something to crawl)."""
    root.mkdir(parents=True, exist_ok=True)
    links = "".join(f'<li><a href="page{n}.html">page {n}</a></li>' for n in range(count))
    (root / "index.html").write_text(f"<html><body><h1>office</h1><ul>{links}</ul></body></html>")
    for n in range(count):
        body = f'<a href="index.html">home</a> <a href="page{(n + 1) % count}.html">next</a>'
        (root / f"page{n}.html").write_text(f"<html><body><p>{body}</p></body></html>")


async def mail_job(board: Board, mail: LocalMailServer, count: int) -> None:
    """Send ``count`` messages over SMTP, then read them back over POP3 and parse each."""
    import email
    import email.policy

    from ..mail import POP3Client, make_message, send_message

    job = board.add("mail", 2 * count)
    smtp_host, smtp_port = mail.smtp_address
    for n in range(1, count + 1):
        message = make_message(
            sender="office@localhost",
            recipients=["demo@localhost"],
            subject=f"office memo {n}",
            body=f"Memo {n}: network programming in Python, on one loop.\n",
        )
        await send_message(message, host=smtp_host, port=smtp_port, timeout=10)
        board.update(job, n, f"sent {n}/{count}")
    subjects = []
    async with POP3Client(*mail.pop3_address, timeout=10) as pop:
        await pop.login("demo", mail.users["demo"])
        for number in await pop.list():
            parsed = email.message_from_bytes(await pop.retr(number), policy=email.policy.default)
            subjects.append(str(parsed["Subject"]))
            board.update(job, count + len(subjects), f"read {len(subjects)}")
    board.finish(job, f"{count} sent, {len(subjects)} read and parsed")


async def ftp_job(
    board: Board, client: Callable[[], FTPClient], names: list[str], uploads: list[Path], out: Path
) -> None:
    """Download ``names`` into ``out`` and upload ``uploads``, all at once."""
    sizes = {}
    async with client() as ftp:
        for name in names:
            sizes[name] = await ftp.size(name) or 0
    total = sum(sizes.values()) + sum(p.stat().st_size for p in uploads)
    job = board.add("ftp", total)
    moved: dict[str, int] = {}
    announced = False

    def progress(state: TransferProgress) -> None:
        nonlocal announced
        moved[f"{state.direction} {state.path}"] = state.offset + state.done
        done = sum(moved.values())
        board.update(job, done, f"{done / 1048576:.1f} / {total / 1048576:.1f} MiB")
        if not announced and state.direction == "download" and state.done:
            announced = True
            board.say("office: FTP transfers under way")

    async def download(name: str) -> None:
        async with client() as ftp:
            await ftp.download(name, out / name, progress=progress)

    async def upload(path: Path) -> None:
        async with client() as ftp:  # under a temporary name, renamed when complete
            await ftp.store(f"incoming/{path.name}.part", path, progress=progress)
            await ftp.rename(f"incoming/{path.name}.part", f"incoming/{path.name}")

    async with asyncio.TaskGroup() as group:
        for name in names:
            group.create_task(download(name))
        for path in uploads:
            group.create_task(upload(path))
    board.finish(job, f"{len(names)} downloaded, {len(uploads)} uploaded")


async def web_job(board: Board, url: str) -> None:
    """Fetch the index, then crawl the site a few pages at a time."""
    from ..web import Client, crawl

    job = board.add("web", None)
    async with Client(timeout=10) as client:
        page = await client.fetch(url)

        def progress(done: int, queued: int, broken: int) -> None:
            board.update(job, done, f"{done}/{queued} pages, {broken} broken", total=queued)

        report = await crawl(url, max_pages=200, concurrency=4, client=client, progress=progress)
    board.finish(
        job, f"index {page.status}, {len(report.pages)} pages crawled, {len(report.broken)} broken"
    )


async def upper_job(board: Board, tcp: Any, udp: Any, until: asyncio.Event) -> None:
    """Keep asking the upper servers for capitals while the others work (bounded)."""
    job = board.add("upper", None)
    answers = 0
    async with await LineClient.connect(*tcp.address, timeout=5) as line:
        async with await DatagramClient.connect(*udp.address, timeout=2) as dgram:
            for n in range(10_000):
                if n and until.is_set():  # at least one round, however quick the others
                    break
                answers += await line.request(f"memo {n}") == f"MEMO {n}"
                answers += await dgram.request(b"spam") == b"SPAM"
                board.update(job, answers, f"{answers} answers", total=answers)
                await asyncio.sleep(0.02)
    board.finish(job, f"{answers} answers over TCP and UDP")


async def office(args: argparse.Namespace, out: Path, scratch: Path) -> int:
    """Start every server, run every job at once, print the summary; 0 also on Ctrl-C."""
    from ..ftp import FTPClient, FTPServer
    from ..mail import LocalMailServer
    from ..web import web_server

    served, site = scratch / "served", scratch / "site"
    make_directory(out)
    names = [p.name for p in sample_files(served, args.files, args.size_kib * 1024, "report")]
    uploads = sample_files(scratch / "outbox", max(1, args.files // 2), args.size_kib * 1024, "up")
    (served / "incoming").mkdir()
    sample_pages(site, args.pages)
    records: list[Message] = []
    board = Board(live=sys.stdout.isatty() and not args.plain)
    throttle = {"write_speed_limit": args.throttle * 1024} if args.throttle else {}
    password = os.urandom(8).hex()
    started = time.monotonic()
    try:
        with catch_signals() as stopped:
            async with contextlib.AsyncExitStack() as stack:
                enter: Callable[[Any], Awaitable[Any]] = stack.enter_async_context
                bucket = await enter(Bucket(port=0, callback=records.append))
                stack.enter_context(logs_to(bucket.address[1]))
                mail = await enter(LocalMailServer({"demo": password}, root=scratch / "mail"))
                ftpd = await enter(FTPServer(served, users={"office": password}, **throttle))
                web = await enter(web_server(site, port=0))
                tcp, udp = await enter(tcp_server(Upper)), await enter(udp_server(UpperDatagram))
                board.say(
                    f"office: mail {mail.smtp_address[1]}/{mail.pop3_address[1]}, ftp "
                    f"{ftpd.address[1]}, web {web.url}, upper {tcp.address[1]}, creosote "
                    f"{bucket.address[1]} (Ctrl-C to stop)"
                )

                def client() -> FTPClient:
                    return FTPClient(*ftpd.address, user="office", password=password)

                async def everything() -> None:
                    done = asyncio.Event()
                    async with asyncio.TaskGroup() as group:
                        group.create_task(upper_job(board, tcp, udp, done))
                        async with asyncio.TaskGroup() as jobs:
                            jobs.create_task(mail_job(board, mail, args.messages))
                            jobs.create_task(ftp_job(board, client, names, uploads, out))
                            jobs.create_task(web_job(board, web.url))
                        done.set()

                with board.shown():
                    work = asyncio.ensure_future(everything())
                    either: set[asyncio.Future[Any]] = {work, stopped}
                    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                    interrupted = not work.done()
                    if interrupted:
                        work.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await work
    finally:  # also when a job failed
        remove_partials(out)
    if interrupted:
        print(f"office: interrupted after {time.monotonic() - started:.1f} s; stopped cleanly")
        return 0
    print(f"office: all done in {time.monotonic() - started:.2f} s on one event loop")
    for job in board.jobs:
        print(f"  {job.name:6} {job.elapsed or 0:6.2f} s  {job.result}")
    print(f"  creosote bucket: {len(records)} log records from everyone")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the office."""
    parser = cli.parser("python -m asyncnet.demos.office", __doc__)
    count = cli.positive_int
    parser.add_argument("--files", type=count, default=4, help="files to download (4)")
    parser.add_argument("--size-kib", type=count, default=512, help="size of each file (512)")
    parser.add_argument("--messages", type=count, default=5, help="messages to send and read (5)")
    parser.add_argument("--pages", type=count, default=12, help="pages to crawl (12)")
    parser.add_argument(
        "--throttle", type=cli.non_negative_int, default=0, help="FTP server KiB/s (0: no limit)"
    )
    parser.add_argument("--out", type=Path, help="keep the downloads here (default: temporary)")
    parser.add_argument("--plain", action="store_true", help="plain lines, no live display")
    return cli.main(parser, body, argv)


def body(args: argparse.Namespace) -> int:
    """The body of main(): scratch space, the office, one line per expected failure."""
    with tempfile.TemporaryDirectory(prefix="asyncnet-office-") as tmp:
        out = args.out or Path(tmp) / "downloads"
        try:
            return run(office(args, out, Path(tmp)))
        except (AsyncNetError, OSError, ExceptionGroup) as exc:
            failures = _leaves(exc)
            expected = all(isinstance(e, AsyncNetError | OSError) for e in failures)
            if args.verbose >= 2 or not expected:
                raise
            for failure in failures:
                print(f"office: {failure} (-vv for details)", file=sys.stderr)
            return 1


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) task-group exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


if __name__ == "__main__":
    raise SystemExit(main())
