"""A mail server in a process of its own, for measuring what a message costs it.

``python -m benchmarks.mail_server pop3|local ROOT USER PASSWORD`` serves ``ROOT``'s
Maildirs on 127.0.0.1: ``pop3`` our POP3 server (its port is printed first), ``local``
the local pair (SMTP in, POP3 out: the SMTP port is printed first).  It answers lines on
stdin: ``mark`` forgets the
peak resident size so far (``/proc/self/clear_refs``), ``peak`` prints the peak since the
last mark, ``rss`` the current size, both in bytes (``VmHWM`` and ``VmRSS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from asyncnet.mail import LocalMailServer, Maildirs, PasswordAuthenticator, POP3Server

from .paths import PACKAGE_PARENT, python_path


@contextlib.contextmanager
def measured(
    mode: str, root: Path, user: str, password: str
) -> Iterator[tuple[int, Callable[[str], int]]]:
    """This module's server in its own process: yields its (first) port and ``ask``,
    which sends one command (``mark``, ``peak``, ``rss``) and returns the answer."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.mail_server", mode, str(root), user, password],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=PACKAGE_PARENT,
        env={**os.environ, "PYTHONPATH": python_path()},
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def ask(command: str) -> int:
        stdin.write(command + "\n")
        stdin.flush()
        return int(stdout.readline())

    try:
        line = stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the {mode} mail server did not start (it printed {line!r})")
        yield int(line), ask
    finally:
        stdin.close()  # the server's cue to stop
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stdout.close()


def status(field: str) -> int:
    """A ``/proc/self/status`` size in bytes (``VmHWM``, ``VmRSS``)."""
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise LookupError(field)


def reset_peak() -> int:
    """Reset ``VmHWM`` to the current resident size (a /proc file: no waiting); the new peak."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return status("VmHWM")


async def main(mode: str, root: str, user: str, password: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        server: Any
        if mode == "pop3":
            maildirs = Maildirs(root, [user])
            auth = PasswordAuthenticator({user: password})
            server = POP3Server(maildirs, auth, host="127.0.0.1", port=0)
            await stack.enter_async_context(server)
            print(server.address[1], flush=True)
        else:
            server = LocalMailServer({user: password}, root=root)
            await stack.enter_async_context(server)
            print(server.smtp_address[1], flush=True)
        while command := (await asyncio.to_thread(sys.stdin.readline)).strip():
            if command == "mark":
                print(reset_peak(), flush=True)
            elif command == "peak":
                print(status("VmHWM"), flush=True)
            elif command == "rss":
                print(status("VmRSS"), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
