"""The office: mail, FTP and web clients at once on one event loop, with live progress.

    python -m asyncnet.demos.office                        # everything embedded, on loopback
    python -m asyncnet.demos.office --files 6 --size-kib 2048 --throttle 1024
    python -m asyncnet.demos.office --out ./downloads      # keep what was downloaded
    python -m asyncnet.demos.office --config office.toml   # your own servers instead

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

``--config office.toml`` points the jobs at your servers instead: an [smtp], [pop3],
[ftp] and [http] table, each with its host, port, user, TLS mode and TLS files
(cafile, cert, key); passwords come from the environment variables the file names
(password_env), never from the file.  A table left out is a job not run.  See
docs/demos/office.md for every key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import posixpath
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import DatagramClient, LineClient, catch_signals, run, tcp_server, udp_server
from ..creosote import Bucket, CreosoteHandler, Message
from ..errors import AsyncNetError, ConfigurationError, format_peer
from ..text import printable
from . import _cli as cli
from .upper import Upper, UpperDatagram

# The mail, FTP and web packages (aiosmtpd, aioftp, aiohttp) load in the jobs that use
# them, and the config reader when --config is given, not here: --help and a usage
# error answer without them.
if TYPE_CHECKING:
    from ..ftp import FTPClient, TransferProgress
    from ..mail import POP3Client
    from ._office_config import (
        FTPSettings,
        HTTPSettings,
        OfficeConfig,
        POP3Settings,
        SMTPSettings,
    )

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


@contextlib.contextmanager
def blamed(where: str) -> Iterator[None]:
    """A failure inside is noted with the server it came from (``office.toml [ftp]``)."""
    try:
        yield
    except (AsyncNetError, OSError) as exc:
        exc.add_note(where)
        raise


async def mail_job(
    board: Board, smtp: SMTPSettings | None, pop3: POP3Settings | None, count: int
) -> None:
    """Send ``count`` messages over SMTP, then read the mailbox over POP3 and parse each."""
    import email
    import email.policy

    from ..mail import POP3Client, TLSRequired, make_message, send_message

    sends = count if smtp is not None else 0
    job = board.add("mail", sends or None)
    if smtp is not None:
        with blamed(smtp.where):
            for n in range(1, count + 1):
                message = make_message(
                    sender=smtp.sender,
                    recipients=smtp.recipients,
                    subject=f"office memo {n}",
                    body=f"Memo {n}: network programming in Python, on one loop.\n",
                )
                try:
                    await send_message(
                        message,
                        host=smtp.host,
                        port=smtp.port,
                        tls=smtp.tls,
                        ssl=smtp.ssl,
                        username=smtp.user,
                        password=smtp.password,
                        timeout=smtp.timeout,
                    )
                except TLSRequired as exc:
                    raise ConfigurationError(
                        f'{exc}; set tls = "starttls" or "implicit" for a server that '
                        'offers TLS, or tls = "none" to send without it'
                    ) from None
                board.update(job, n, f"sent {n}/{count}")
    read = 0
    if pop3 is not None:
        with blamed(pop3.where):
            async with POP3Client(
                pop3.host, pop3.port, tls=pop3.tls, ssl=pop3.ssl, timeout=pop3.timeout
            ) as pop:
                await log_in(pop, pop3)
                numbers = sorted(await pop.list())[: pop3.max_messages]
                board.update(job, sends, f"reading {len(numbers)}", total=sends + len(numbers))
                async for _, data in pop.retr_many(numbers):  # pipelined if the server can
                    email.message_from_bytes(data, policy=email.policy.default)
                    read += 1
                    board.update(job, sends + read, f"read {read}/{len(numbers)}")
    done = [f"{sends} sent"] if smtp is not None else []
    done += [f"{read} read and parsed"] if pop3 is not None else []
    board.finish(job, ", ".join(done))


async def log_in(pop: POP3Client, pop3: POP3Settings) -> None:
    """Log in with ``auth`` (or the best method offered); failures in the config's words."""
    from ..mail import POP3ReplyError, TLSRequired

    try:
        await pop.authenticate(pop3.user, pop3.secret, pop3.auth)
    except TLSRequired:
        what = f'auth = "{pop3.auth}"' if pop3.auth else "every login method the server offers"
        raise ConfigurationError(
            f'{what} would send the password in cleartext: set tls = "stls" (or "implicit" '
            'with the TLS port), or tls = "none" to send it anyway'
        ) from None
    except POP3ReplyError as exc:
        if exc.temporary:  # [IN-USE], [SYS/TEMP]: the server's words say it all
            raise
        offered = await pop.auth_methods(usable_only=False)
        if pop3.auth is not None and pop3.auth not in offered:
            others = ", ".join(offered) or "none asyncnet speaks"
            raise ConfigurationError(
                f'the server refused auth = "{pop3.auth}" ({exc}); it offers: {others}. '
                "Choose one of those, or leave auth out"
            ) from None
        password = f"${pop3.password_env}" if pop3.password_env else "the password"
        raise ConfigurationError(f"{exc}: check user and {password}") from None


def ftp_client(settings: FTPSettings) -> FTPClient:
    """A new FTP session with the settings (one per transfer: they run at once)."""
    from ..ftp import FTPClient

    return FTPClient(
        settings.host,
        settings.port,
        user=settings.user,
        password=settings.password,
        tls=settings.tls,
        ssl=settings.ssl,
        passive=settings.passive,
        connect_timeout=settings.timeout,
        command_timeout=settings.timeout,
        idle_timeout=settings.timeout,
    )


def _mib(count: float) -> str:
    return f"{count / 1048576:.1f}"


async def ftp_job(board: Board, settings: FTPSettings, out: Path) -> None:
    """Download ``settings.downloads`` into ``out`` and upload ``settings.uploads``, all at once.

    The bar's total is what the server says the files hold (MLST, else SIZE) plus the
    uploads' sizes; a server that answers neither leaves the total unknown, so the bar
    counts bytes instead of running past a guess.
    """
    with blamed(settings.where):
        await _ftp_job(board, settings, out)


async def _ftp_job(board: Board, settings: FTPSettings, out: Path) -> None:
    sizes: list[int | None] = []
    async with ftp_client(settings) as ftp:
        for name in settings.downloads:
            sizes.append((await ftp.fingerprint(name)).size)
    sizes += [path.stat().st_size for path in settings.uploads]
    total = None if None in sizes else sum(s for s in sizes if s is not None)
    job = board.add("ftp", total)
    moved: dict[str, int] = {}
    announced = False

    def progress(state: TransferProgress) -> None:
        nonlocal announced
        moved[f"{state.direction} {state.path}"] = state.offset + state.done
        done = sum(moved.values())
        shown = f"{_mib(done)} / {_mib(total)} MiB" if total is not None else f"{_mib(done)} MiB"
        board.update(job, done, shown)
        if not announced and state.direction == "download" and state.done:
            announced = True
            board.say("office: FTP transfers under way")

    async def download(name: str) -> None:
        async with ftp_client(settings) as ftp:
            await ftp.download(name, out / posixpath.basename(name), progress=progress)

    async def upload(path: Path) -> None:
        remote = f"{settings.upload_dir}/{path.name}" if settings.upload_dir else path.name
        async with ftp_client(settings) as ftp:  # under a temporary name, renamed when complete
            await ftp.store(f"{remote}.part", path, progress=progress)
            await ftp.rename(f"{remote}.part", remote)

    async with asyncio.TaskGroup() as group:
        for name in settings.downloads:
            group.create_task(download(name))
        for path in settings.uploads:
            group.create_task(upload(path))
    board.finish(job, f"{len(settings.downloads)} downloaded, {len(settings.uploads)} uploaded")


async def web_job(board: Board, settings: HTTPSettings) -> None:
    """Fetch the start page, then crawl its site a few pages at a time."""
    import base64

    headers = {}
    if settings.user is not None:  # basic auth; dropped if a redirect leaves the origin
        login = f"{settings.user}:{settings.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(login).decode("ascii")
    job = board.add("web", None)
    with blamed(settings.where):
        await _crawl(board, job, settings, headers)


async def _crawl(board: Board, job: Job, settings: HTTPSettings, headers: dict[str, str]) -> None:
    from ..web import Client, crawl

    async with Client(
        timeout=settings.timeout, ssl=settings.ssl, proxy=settings.proxy, headers=headers
    ) as client:
        page = await client.fetch(settings.url)

        def progress(done: int, queued: int, broken: int) -> None:
            board.update(job, done, f"{done}/{queued} pages, {broken} broken", total=queued)

        report = await crawl(
            settings.url,
            max_pages=settings.max_pages,
            concurrency=4,
            timeout=settings.timeout,
            client=client,
            progress=progress,
        )
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


async def embedded(
    stack: contextlib.AsyncExitStack, args: argparse.Namespace, scratch: Path
) -> OfficeConfig:
    """Start the local mail pair, an FTP server and a web server over sample data (in
    ``stack``); the settings that point the jobs at them."""
    from ..ftp import FTPServer
    from ..mail import LocalMailServer
    from ..web import web_server
    from ._office_config import (
        FTPSettings,
        HTTPSettings,
        OfficeConfig,
        POP3Settings,
        SMTPSettings,
    )

    served, site = scratch / "served", scratch / "site"
    names = [p.name for p in sample_files(served, args.files, args.size_kib * 1024, "report")]
    uploads = sample_files(scratch / "outbox", max(1, args.files // 2), args.size_kib * 1024, "up")
    (served / "incoming").mkdir()
    sample_pages(site, args.pages)
    throttle = {"write_speed_limit": args.throttle * 1024} if args.throttle else {}
    password = os.urandom(8).hex()
    enter: Callable[[Any], Awaitable[Any]] = stack.enter_async_context
    mail = await enter(LocalMailServer({"demo": password}, root=scratch / "mail"))
    ftpd = await enter(FTPServer(served, users={"office": password}, **throttle))
    web = await enter(web_server(site, port=0))
    (smtp_host, smtp_port), (pop3_host, pop3_port) = mail.smtp_address, mail.pop3_address
    ftp_host, ftp_port = ftpd.address
    return OfficeConfig(
        Path("(embedded)"),
        smtp=SMTPSettings(smtp_host, smtp_port, timeout=10),
        # the pair's own user on loopback: USER/PASS without TLS, said on purpose
        pop3=POP3Settings(pop3_host, "demo", password, pop3_port, tls="none", auth="user"),
        ftp=FTPSettings(
            ftp_host,
            ftp_port,
            user="office",
            password=password,
            downloads=names,
            uploads=uploads,
            upload_dir="incoming",
        ),
        http=HTTPSettings(web.url, timeout=10),
    )


def _where(host: str, port: int | None) -> str:
    return format_peer((host, port)) if port is not None else host


def servers_line(config: OfficeConfig, tcp: Any, bucket: Any) -> str:
    """The line that says which servers the jobs talk to."""
    parts = []
    if config.smtp is not None:
        parts.append(f"smtp {_where(config.smtp.host, config.smtp.port)}")
    if config.pop3 is not None:
        parts.append(f"pop3 {_where(config.pop3.host, config.pop3.port)}")
    if config.ftp is not None:
        parts.append(f"ftp {_where(config.ftp.host, config.ftp.port)}")
    if config.http is not None:
        parts.append(f"web {printable(config.http.url)}")
    parts.append(f"upper {tcp.address[1]}, creosote {bucket.address[1]}")
    return f"office: {', '.join(parts)} (Ctrl-C to stop)"


async def office(
    args: argparse.Namespace, out: Path, scratch: Path, config: OfficeConfig | None = None
) -> int:
    """Start the servers (embedded unless ``config`` names them), run every job at once,
    print the summary; 0 also on Ctrl-C."""
    make_directory(out)
    records: list[Message] = []
    board = Board(live=sys.stdout.isatty() and not args.plain)
    started = time.monotonic()
    try:
        with catch_signals() as stopped:
            async with contextlib.AsyncExitStack() as stack:
                enter: Callable[[Any], Awaitable[Any]] = stack.enter_async_context
                bucket = await enter(Bucket(port=0, callback=records.append))
                stack.enter_context(logs_to(bucket.address[1]))
                settings = config or await embedded(stack, args, scratch)
                tcp, udp = await enter(tcp_server(Upper)), await enter(udp_server(UpperDatagram))
                board.say(servers_line(settings, tcp, bucket))

                async def everything() -> None:
                    done = asyncio.Event()
                    async with asyncio.TaskGroup() as group:
                        group.create_task(upper_job(board, tcp, udp, done))
                        async with asyncio.TaskGroup() as jobs:
                            if settings.smtp is not None or settings.pop3 is not None:
                                jobs.create_task(
                                    mail_job(board, settings.smtp, settings.pop3, args.messages)
                                )
                            if settings.ftp is not None:
                                jobs.create_task(ftp_job(board, settings.ftp, out))
                            if settings.http is not None:
                                jobs.create_task(web_job(board, settings.http))
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


EMBEDDED_ONLY = ("files", "size_kib", "pages", "throttle")
"""Options that shape the embedded servers' sample data: meaningless with --config."""


def main(argv: list[str] | None = None) -> int:
    """Run the office."""
    parser = cli.parser("python -m asyncnet.demos.office", __doc__)
    count = cli.positive_int
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="use the SMTP, POP3, FTP and HTTP servers named in FILE (TOML) instead of "
        "embedded ones (see docs/demos/office.md)",
    )
    parser.add_argument("--files", type=count, help="embedded: files to download (4)")
    parser.add_argument("--size-kib", type=count, help="embedded: size of each file (512)")
    parser.add_argument("--messages", type=count, default=5, help="messages to send (5)")
    parser.add_argument("--pages", type=count, help="embedded: pages to crawl (12)")
    parser.add_argument(
        "--throttle", type=cli.non_negative_int, help="embedded: FTP server KiB/s (0: no limit)"
    )
    parser.add_argument("--out", type=Path, help="keep the downloads here (default: temporary)")
    parser.add_argument("--plain", action="store_true", help="plain lines, no live display")
    return cli.main(parser, body, argv)


def body(args: argparse.Namespace) -> int:
    """The body of main(): the config, scratch space, the office, one line per failure."""
    config = None
    if args.config is not None:
        given = [name for name in EMBEDDED_ONLY if getattr(args, name) is not None]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise cli.UsageError(
                f"{flag} shapes the embedded servers; with --config the files and pages are "
                "your servers' (name them in the config file)"
            )
        from ._office_config import load_config

        config = load_config(args.config)  # a wrong setting: one line, before any connection
    for name, default in zip(EMBEDDED_ONLY, (4, 512, 12, 0), strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    with tempfile.TemporaryDirectory(prefix="asyncnet-office-") as tmp:
        out = args.out or Path(tmp) / "downloads"
        try:
            return run(office(args, out, Path(tmp), config))
        except (AsyncNetError, OSError, ExceptionGroup) as exc:
            failures = _leaves(exc)
            expected = all(isinstance(e, AsyncNetError | OSError) for e in failures)
            if args.verbose >= 2 or not expected:
                raise
            for failure in failures:
                where = "".join(f"{note}: " for note in getattr(failure, "__notes__", ()))
                text = printable(f"{where}{failure}")
                print(f"office: {text} (-vv for details)", file=sys.stderr)
            return 1


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) task-group exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


if __name__ == "__main__":
    raise SystemExit(main())
