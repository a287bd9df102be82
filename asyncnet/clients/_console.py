"""Console helpers for interactive clients: stdin lines without blocking the loop.

Typed input is not always text in the locale's encoding: a file in Latin-1, a UTF-16
byte order mark, binary garbage.  :func:`stdin_lines` never fails on such bytes (the
locale's strict decoding would raise in the middle of a session): a byte that does
not decode comes through as a lone surrogate (Python's ``surrogateescape``, as for
file names), so each client decides.  `asyncnet.text.line_bytes` gives back the bytes as
they came, for a protocol that carries bytes; `asyncnet.text.not_text` tells a text protocol
that the line cannot be sent as text.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator
from typing import TextIO

from ..text import WIRE_ENCODING

__all__ = ["stdin_lines"]


async def stdin_lines(stream: TextIO | None = None, prompt: str = "") -> AsyncIterator[str]:
    """Yield lines typed on ``stream`` (default stdin), without their newline, until EOF.

    A daemon thread does the blocking reads and hands lines to the loop, so this
    works for terminals, pipes and redirected files alike, and Ctrl-C never waits
    for the thread.  ``prompt`` is shown before each line when the stream is a tty.

    A stream with a binary ``buffer`` (``sys.stdin``) is read as bytes and decoded
    with its encoding and ``surrogateescape``, whatever its own error handler: any
    bytes make a line.  A failed read (stdin closed under us) ends the lines with
    that error instead of leaving the session waiting for ever.
    """
    source = stream or sys.stdin
    if source is None:  # started with stdin closed (``<&-``): no input at all
        return
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue(maxsize=1)
    wanted = threading.Semaphore(0)
    show_prompt = bool(prompt) and source.isatty()
    binary = getattr(source, "buffer", None)
    encoding = getattr(source, "encoding", None) or WIRE_ENCODING

    def read_line() -> str:
        if binary is None:
            return source.readline()
        return str(binary.readline().decode(encoding, "surrogateescape"))

    def reader() -> None:
        while True:
            wanted.acquire()
            if show_prompt:
                sys.stdout.write(prompt)
                sys.stdout.flush()
            item: str | BaseException | None
            try:
                item = read_line() or None
            except Exception as exc:  # handed to the loop and raised there, in the session
                item = exc
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop has closed: nobody wants more lines
                return
            if not isinstance(item, str):
                return

    threading.Thread(target=reader, name="asyncnet-stdin", daemon=True).start()
    while True:
        wanted.release()
        line = await queue.get()
        if line is None:
            return
        if isinstance(line, BaseException):
            raise line
        yield line.rstrip("\r\n")
