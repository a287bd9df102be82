"""The client comparison's asyncnet mode: the same jobs on one event loop.

The jobs mirror :func:`benchmarks.clientload._blocking_jobs` call for call:
one POP3 session per mailbox (LIST, RETR and parse each message), one SMTP session
per send, one FTP session per file (``retrieve`` into an open file, ftplib's
``retrbinary(..., f.write)``), and one GET per page over a shared HTTP client.  At
most ``workload.loop_concurrency`` jobs run at once (by default all of them: a waiting
task holds no thread, which is the point of one loop; ``--loop-concurrency 16`` in
:mod:`benchmarks.clients` gives it the thread pool's limit instead).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from asyncnet import run
from asyncnet.ftp import FTPClient
from asyncnet.mail import POP3Client, send_message
from asyncnet.web import Client

from .workload import HOST, PASSWORD, Workload, message_bytes, result_of, status_field

__all__ = ["run_asyncnet"]


async def _work(ports: dict[str, int], w: Workload, out: Path) -> tuple[list[int], int, str]:
    """Every job once, ``w.loop_concurrency`` at a time: bytes per job, threads, the loop."""
    limit = asyncio.Semaphore(w.loop_concurrency or w.jobs())

    async def mailbox(box: int) -> int:
        async with POP3Client(HOST, ports["pop3"], timeout=30) as pop:
            await pop.login(f"box{box}", PASSWORD)
            total = 0
            for number in await pop.list():
                data = await pop.retr(number)
                message = email.message_from_bytes(data, policy=email.policy.default)
                total += len(data) if message["Subject"] else 0
            return total

    async def send(box: int) -> int:
        data = message_bytes(box, 0)
        message = email.message_from_bytes(data, policy=email.policy.default)
        refused = await send_message(
            message,
            sender="sender@localhost",
            recipients=[f"box{box}@localhost"],
            host=HOST,
            port=ports["smtp"],
            timeout=30,
        )
        return 0 if refused else len(data)

    async def download(k: int) -> int:
        async with FTPClient(HOST, ports["ftp"], user="bench", password=PASSWORD) as ftp:
            # A plain file and f.write, exactly what retrbinary gets on the blocking side.
            with open(out / f"file{k}.bin", "wb") as f:  # noqa: ASYNC230
                return await ftp.retrieve(f"file{k}.bin", f.write)

    async with Client(timeout=30) as web:

        async def page(p: int) -> int:
            response = await web.fetch(f"http://{HOST}:{ports['http']}/page{p}.html")
            return len(response.body)

        jobs: list[Callable[[], Awaitable[int]]] = [
            *(lambda b=b: mailbox(b) for b in range(w.mailboxes)),
            *(lambda b=b: send(b) for b in range(w.mailboxes)),
            *(lambda k=k: download(k) for k in range(w.files)),
            *(lambda p=p: page(p) for p in range(w.pages)),
        ]

        async def bounded(job: Callable[[], Awaitable[int]]) -> int:
            async with limit:
                return await job()

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(bounded(job)) for job in jobs]
        threads = status_field("Threads")  # executor threads, if any, are still alive here
    return [t.result() for t in tasks], threads, type(asyncio.get_running_loop()).__module__


def run_asyncnet(ports: dict[str, int], w: Workload, out: Path) -> dict[str, Any]:
    """Run the workload once on one event loop (uvloop when installed, as the demos do)."""
    rss_before = status_field("VmRSS")
    started = time.perf_counter()
    done, threads, loop = run(_work(ports, w, out))
    result = result_of(started, rss_before, threads, done)
    result["loop"] = loop.partition(".")[0]  # uvloop adds libuv's fixed pool of 4 threads
    return result
