"""Console helpers for interactive clients: stdin lines without blocking the loop."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator
from typing import TextIO

__all__ = ["stdin_lines"]


async def stdin_lines(stream: TextIO | None = None, prompt: str = "") -> AsyncIterator[str]:
    """Yield lines typed on ``stream`` (default stdin), without their newline, until EOF.

    A daemon thread does the blocking reads and hands lines to the loop, so this
    works for terminals, pipes and redirected files alike, and Ctrl-C never waits
    for the thread.  ``prompt`` is shown before each line when the stream is a tty.
    """
    source = stream or sys.stdin
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=1)
    wanted = threading.Semaphore(0)
    show_prompt = bool(prompt) and source.isatty()

    def reader() -> None:
        while True:
            wanted.acquire()
            if show_prompt:
                sys.stdout.write(prompt)
                sys.stdout.flush()
            line = source.readline()
            try:
                loop.call_soon_threadsafe(queue.put_nowait, line if line else None)
            except RuntimeError:  # the loop has closed: nobody wants more lines
                return
            if not line:
                return

    threading.Thread(target=reader, name="asyncnet-stdin", daemon=True).start()
    while True:
        wanted.release()
        line = await queue.get()
        if line is None:
            return
        yield line.rstrip("\r\n")
