"""Small helpers shared by the tests (not part of the public API)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

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
    """Wait (yielding to the loop) until ``predicate()`` is true; fail after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


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
