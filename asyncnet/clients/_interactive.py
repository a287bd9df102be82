"""Interactive sessions: lines typed on stdin go to a server, replies are printed.

Replies are printed through :func:`~asyncnet.text.printable`: a hostile server must
not be able to send ESC sequences, BEL or CR to the user's terminal.

Input that is not text (bytes the locale cannot decode, see :mod:`asyncnet.clients._console`)
is handled per protocol.  The TCP client speaks UTF-8 lines: such a line cannot be
sent as one (a strict server answers an error and hangs up), so it is refused with
one message and the session goes on.  A datagram is bytes: the UDP client sends the
line's bytes as they came.
"""

from __future__ import annotations

import sys
from typing import TextIO

from ..errors import AsyncNetError, format_peer
from ..text import line_bytes, not_text, printable
from ._console import stdin_lines
from ._datagram import DatagramClient
from ._lines import LineClient

__all__ = ["datagram_session", "line_session"]

_SHOWN = 40
"""Bytes of a refused line shown in the message (a line may be 64 KiB)."""


async def line_session(
    host: str,
    port: int,
    *,
    timeout: float = 10.0,
    retries: int = 0,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """The tutorial's TCP client: send each typed line, print the reply; a blank line ends.

    Returns an exit status: 0 after a normal end, 1 when the server could not be
    reached or stopped answering (the reason is printed on stderr).
    """
    try:
        async with await LineClient.connect(host, port, timeout=timeout) as client:
            print(
                f"connected to {format_peer(client.peer)} from {format_peer(client.local_address)}",
                file=sys.stderr,
            )
            async for line in stdin_lines(stdin, prompt="> "):
                if not line:
                    await client.send_line("")
                    break
                if not_text(line, client.encoding):
                    _refuse(line, client.encoding.upper())
                    continue
                print(printable(await client.request(line)), file=stdout or sys.stdout, flush=True)
    except AsyncNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _refuse(line: str, encoding: str) -> None:
    """Say on stderr that ``line`` is not sent, showing (the start of) its bytes escaped."""
    data = line_bytes(line)
    shown = repr(data[:_SHOWN]) + ("..." if len(data) > _SHOWN else "")
    print(
        f"error: line not sent: {shown} is not {encoding} text (the server reads {encoding} lines)",
        file=sys.stderr,
        flush=True,
    )


async def datagram_session(
    host: str,
    port: int,
    *,
    timeout: float = 2.0,
    retries: int = 2,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """The tutorial's UDP client, bounded: each line is a datagram, each reply is printed.

    Gives up on a line after ``retries`` extra attempts and says so (exit status 1)
    instead of hanging forever as the original did.
    """
    async with await DatagramClient.connect(host, port, timeout=timeout, retries=retries) as client:
        async for line in stdin_lines(stdin, prompt="> "):
            if not line:
                break
            try:
                reply = await client.request(line_bytes(line))
            except AsyncNetError as exc:
                print(f"error: {exc}", file=sys.stderr)
                for note in getattr(exc, "__notes__", ()):
                    print(f"  ({note})", file=sys.stderr)
                return 1
            text = printable(reply.decode(errors="replace"))
            print(text, file=stdout or sys.stdout, flush=True)
    return 0
