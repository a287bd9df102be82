"""Small helpers shared by the tests (not part of the public API)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO

from asyncnet import DatagramHandler, LineHandler

ROOT = Path(__file__).resolve().parent.parent


class Upper(LineHandler):
    """The tutorial's upper server: each line back in capitals."""

    async def handle_line(self, line: str) -> str:
        return line.upper()


class Echo(DatagramHandler):
    """Each datagram back to its sender."""

    async def handle(self, data: bytes, addr: object) -> bytes:
        return data


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate()`` until it is true; fail after ``timeout``.

    Only for a state that nothing signals: a file a foreign process writes, a byte
    count the server's read path updates without an event (an event per read would
    cost the fast path).  Everything else awaits its event: ``server.events``, a
    reply on a socket, a subprocess's output line, :func:`process_exited`,
    :class:`WatchedText`.
    """
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


async def process_exited(pid: int, timeout: float = 5.0) -> None:
    """Wait until process ``pid`` has ended (killed or exited; it may be a zombie).

    Any process, not only a child of ours (a CGI script's background child, say):
    a pidfd becomes readable when the process ends, so this is an event, not a poll.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # already gone and reaped
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, lambda: ended.done() or ended.set_result(None))
    try:
        async with asyncio.timeout(timeout):
            await ended
    finally:
        loop.remove_reader(fd)
        os.close(fd)


class WatchedText(io.StringIO):
    """A text stream (a client's stdout, say) whose contents a test can await."""

    def __init__(self) -> None:
        super().__init__()
        self._written = asyncio.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        self._written.set()
        return written

    async def wait_for(self, text: str, timeout: float = 5.0) -> None:
        """Return once ``text`` has been written (it may span several writes)."""
        async with asyncio.timeout(timeout):
            while text not in self.getvalue():
                self._written.clear()
                await self._written.wait()


async def read_all(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    """Read until EOF (or a reset, which counts as EOF here)."""
    async with asyncio.timeout(timeout):
        try:
            return await reader.read()
        except ConnectionResetError:
            return b""


@contextmanager
def spawn(args: list[str], **kwargs: object) -> Iterator[subprocess.Popen[str]]:
    """Start a Python subprocess (text mode, pipes) and make sure it is gone afterwards."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
        **kwargs,  # type: ignore[call-overload]
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)


@asynccontextmanager
async def program(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``python ARGS`` (in the repository, pipes, unbuffered); kill it if the test
    left it running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def read_listening_line(proc: subprocess.Popen[str], pattern: str) -> re.Match[str]:
    """Read stdout lines until one matches ``pattern`` (the program says it is ready)."""
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(
        f"program exited before announcing itself; stdout={seen!r}, "
        f"stderr={proc.stderr.read() if proc.stderr else ''!r}"
    )


FD_LIMITED_UPPER = """
import asyncio, resource, sys
from asyncnet import run, tcp_server
from asyncnet.demos.upper import Upper
from asyncnet._runner import configure_logging

configure_logging(0)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

async def main():
    async with tcp_server(Upper, backlog=200) as server:
        print("listening on port", server.address[1], flush=True)
        done = asyncio.Event()
        asyncio.get_running_loop().add_reader(sys.stdin.fileno(), done.set)
        await done.wait()
        stats = server.stats
        print("accept_errors", stats.accept_errors, "at_fd_limit", stats.connections_at_fd_limit)

run(main(), use_uvloop=sys.argv[1] == "uvloop")
"""
"""The upper server in a process of 64 file descriptors; a line on stdin stops it."""


@contextmanager
def fd_limited_upper(loop: str, log: IO[str]) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Run :data:`FD_LIMITED_UPPER` on ``loop``; yield the process and its port.

    ``log`` (its stderr) should be a file: a pipe nobody drains would hide a log
    flood as a hang.
    """
    with subprocess.Popen(
        [sys.executable, "-c", FD_LIMITED_UPPER, loop],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    ) as proc:
        try:
            yield proc, int(read_listening_line(proc, r"listening on port (\d+)")[1])
        finally:
            if proc.poll() is None:
                proc.kill()


def stop_fd_limited(proc: subprocess.Popen[str], timeout: float) -> dict[str, int]:
    """Stop :func:`fd_limited_upper`'s server; return the counters it printed."""
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    words = proc.stdout.read().split()
    assert proc.wait(timeout=timeout) == 0
    return {name: int(value) for name, value in zip(words[::2], words[1::2], strict=True)}
