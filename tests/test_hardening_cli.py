"""The command-line clients take any input bytes, and a closed stdout is a quiet exit.

Each client runs as a subprocess, exactly as a user starts it, against a real server
on 127.0.0.1 port 0 in the test's own loop.  The input is not UTF-8 (``\\xff\\xfe``):
with the locale's usual strict decoding (``PYTHONIOENCODING=utf-8``, as on a desktop
with ``LANG=en_US.UTF-8``) and with ``surrogateescape`` (Python's choice in the C and
C.UTF-8 locales).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import pytest

from asyncnet import DatagramHandler, tcp_server, udp_server
from asyncnet.chat import ChatRoom
from asyncnet.demos.chat import Chat
from asyncnet.demos.echo import Echo
from asyncnet.demos.upper import Upper

from .helpers import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

BAD = b"\xff\xfe"
"""Two bytes that are not UTF-8 (a UTF-16 byte order mark, as a Windows editor writes)."""

REFUSAL = "error: line not sent: {} is not UTF-8 text (the server reads UTF-8 lines)"

STDIO_ERRORS = {
    "strict": {"PYTHONIOENCODING": "utf-8"},
    "surrogateescape": {"PYTHONIOENCODING": "utf-8:surrogateescape"},
}


async def client(env: dict[str, str], *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    """Run ``python -m asyncnet.demos.ARGS`` with ``stdin``; (status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1", **env),
    )
    try:
        async with asyncio.timeout(30):
            out, err = await proc.communicate(stdin)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


@pytest.mark.parametrize("env", STDIO_ERRORS.values(), ids=STDIO_ERRORS.keys())
async def test_upper_tcp_client_refuses_a_line_that_is_not_utf8_and_carries_on(
    env: dict[str, str],
) -> None:
    """A UTF-8 line protocol cannot carry the bytes (the server would answer an error
    and hang up): the line is refused with one message, the session goes on."""
    async with tcp_server(Upper, port=0) as server:
        status, out, err = await client(
            env,
            "asyncnet.demos.upper",
            "--client",
            "--port",
            str(server.address[1]),
            stdin=b"one\n" + BAD + b"x\ntwo\n\n",
        )
    assert "Traceback" not in err, err
    assert status == 0, err
    assert out == "ONE\nTWO\n"
    [refusal] = [line for line in err.splitlines() if not line.startswith("connected to")]
    assert refusal == REFUSAL.format(r"b'\xff\xfex'")
    assert server.stats.protocol_errors == 0


@pytest.mark.parametrize("env", STDIO_ERRORS.values(), ids=STDIO_ERRORS.keys())
async def test_upper_udp_client_sends_the_bytes_as_they_came(env: dict[str, str]) -> None:
    """Datagrams are bytes and the server upper-cases bytes: the line goes as typed."""
    received: list[bytes] = []

    class Recording(DatagramHandler):
        def handle(self, data: bytes, addr: Any) -> bytes:
            received.append(data)
            return data.upper()

    async with udp_server(Recording, port=0) as server:
        status, out, err = await client(
            env,
            "asyncnet.demos.upper",
            "--client",
            "--udp",
            "--port",
            str(server.address[1]),
            stdin=b"one\n" + BAD + b"x\n\n",
        )
    assert "Traceback" not in err, err
    assert status == 0, err
    assert received == [b"one", BAD + b"x"]
    assert out == "ONE\n\ufffd\ufffdX\n"


@pytest.mark.parametrize("env", STDIO_ERRORS.values(), ids=STDIO_ERRORS.keys())
async def test_chat_client_sends_the_bytes_as_they_came(env: dict[str, str]) -> None:
    """The chat server decodes with errors="replace" (one stray byte must not cost a
    member the room): the client sends the bytes, the room shows U+FFFD."""
    room = ChatRoom(handler_class=Chat)
    async with tcp_server(room.handler, port=0) as server:
        status, out, err = await client(
            env,
            "asyncnet.demos.chat",
            "--client",
            "--port",
            str(server.address[1]),
            stdin=b"/me waves " + BAD + b"\n",
        )
    assert "Traceback" not in err, err
    assert status == 0, err
    assert "~ guest1 waves \ufffd\ufffd\n" in out
    assert out.endswith("* bye\n")


async def test_echo_client_refuses_a_message_that_is_not_utf8() -> None:
    """echo's MESSAGE comes from argv (bytes the OS hands over as they are): the echo
    server reads UTF-8 lines only, so a message that is not UTF-8 is a bad value."""
    async with tcp_server(Echo, port=0) as server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "asyncnet.demos.echo",
            "--port",
            str(server.address[1]),
            b"--client",
            b"hi " + BAD,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    text = err.decode("utf-8", "replace")
    assert "Traceback" not in text, text
    assert proc.returncode == 2, text
    assert out == b""
    assert text.splitlines() == [
        "python -m asyncnet.demos.echo: error: argument --client: "
        r"b'hi \xff\xfe' is not UTF-8 text (see --help)"
    ]
    assert server.stats.connections_total == 0


# -- a closed stdout ---------------------------------------------------------------


def test_stdout_closed_early_is_a_quiet_exit() -> None:
    """`... | head -1`: the reader goes away after one line; Python's documented recipe
    for SIGPIPE is a quiet exit with status 1, no "Broken pipe", no traceback."""
    # ~2 MB of output: far more than a pipe holds, so the writer must meet the closed end.
    values = [str(n) for n in range(20000)]
    with subprocess.Popen(
        [sys.executable, "-m", "asyncnet.demos.byteorder", *values],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert proc.stdout.readline().startswith(b"this machine is")
        proc.stdout.close()
        err = proc.stderr.read().decode("utf-8", "replace")
        status = proc.wait(timeout=30)
    assert err == ""
    assert status == 1


PEER_PIPE = """
import sys
from asyncnet.demos import _cli as cli

def body(args):
    print("started", flush=True)
    raise BrokenPipeError(32, "Broken pipe")  # as a socket whose peer went away

sys.exit(cli.main(cli.parser("peer", None), body, []))
"""


def test_a_broken_pipe_elsewhere_is_still_reported() -> None:
    """Only a closed stdout is quiet: EPIPE from a peer is still a one-line error."""
    result = subprocess.run(
        [sys.executable, "-c", PEER_PIPE],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert result.stdout == "started\n"
    assert result.stderr == "peer: error: Broken pipe\n"
    assert result.returncode == 1
