"""The creosote demo as a user runs it (subprocesses), and the classic creosote.py with it.

Each program is started on port 0 and says where it listens; the test reads that line
rather than guessing a port, and stops servers with SIGINT, expecting exit status 0.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
from pathlib import Path

import aiohttp
import pytest

from asyncnet.creosote import Bucket, Emitter, spew
from asyncnet.creosote._protocol import MAGIC

from .helpers import program

ROOT = Path(__file__).resolve().parent.parent
CLASSIC = ROOT / "demos" / "creosote.py"

pytestmark = pytest.mark.slow


async def read_line(proc: asyncio.subprocess.Process, timeout: float = 15.0) -> str:
    """The next line of the program's stdout (failing on EOF or after ``timeout``)."""
    assert proc.stdout is not None
    async with asyncio.timeout(timeout):
        raw = await proc.stdout.readline()
    if not raw:
        assert proc.stderr is not None
        raise AssertionError(f"program ended; stderr: {(await proc.stderr.read())!r}")
    return raw.decode("utf-8", "replace").rstrip("\n")


async def interrupt(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    """SIGINT, as Ctrl-C would; return the exit status and the rest of stdout."""
    proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(15):
        rest, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, rest.decode("utf-8", "replace")


def closed_udp_port() -> int:
    """A loopback UDP port that nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_listen_prints_messages_safely_logs_them_and_stops_on_sigint(
    tmp_path: Path,
) -> None:
    """C3 end to end: what the bucket prints has no raw control bytes."""
    log = tmp_path / "bucket.log"
    big = tmp_path / "big.txt"
    big.write_bytes(b"".join(b"line %05d of a big file\n" % n for n in range(400)))
    async with program(
        "-m", "asyncnet.demos.creosote", "listen", "--port", "0", "--web", "0", "--log", str(log)
    ) as bucket:
        ready = await read_line(bucket)
        match = re.search(r"listening on udp://127\.0\.0\.1:(\d+) and (http://\S+)", ready)
        assert match, ready
        port, url = match[1], match[2]

        async with program(
            "-m", "asyncnet.demos.creosote", "spew", "--port", port, "a", "message"
        ) as spewer:
            assert await spewer.wait() == 0
        async with program(
            "-m", "asyncnet.demos.creosote", "spew", "--port", port, "--framed", "--file", str(big)
        ) as spewer:
            out, _ = await spewer.communicate()
            assert spewer.returncode == 0
            assert b"in 10 datagram(s)" in out
        await spew("\x1b[2J\x00 evil \xff", port=int(port))
        lines = [await read_line(bucket) for _ in range(3)]

        async with aiohttp.ClientSession() as session, session.get(url) as page:
            assert page.status == 200
        status, rest = await interrupt(bucket)

    assert status == 0
    assert lines[0].endswith(" a message")
    assert re.match(r"\d\d:\d\d:\d\d\.\d{3} 127\.0\.0\.1:\d+ ", lines[0])
    assert lines[1].endswith("line 00399 of a big file\\n")  # reassembled: one line
    assert "line 00000" in lines[1]
    assert lines[2].endswith(" \\x1b[2J\\x00 evil \u00ff")
    assert all(line.isprintable() for line in lines)
    assert "\x1b" not in rest
    logged = log.read_text(encoding="utf-8").splitlines()
    assert len(logged) == 3
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ", logged[0])
    assert logged[0].endswith(" a message")


async def test_spew_with_nobody_listening_exits_zero() -> None:
    """C1 from the command line."""
    async with program(
        "-m", "asyncnet.demos.creosote", "spew", "--port", str(closed_udp_port()), "hello?"
    ) as spewer:
        out, err = await spewer.communicate()
    assert spewer.returncode == 0, err
    assert b"spewed 6 bytes in 1 datagram(s)" in out


async def test_listen_on_a_busy_port_says_which() -> None:
    """C4 from the command line: a clear error naming the port, exit status 1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        port = str(squatter.getsockname()[1])
        async with program("-m", "asyncnet.demos.creosote", "listen", "--port", port) as bucket:
            async with asyncio.timeout(15):
                out, err = await bucket.communicate()
    assert bucket.returncode == 1
    assert f"udp port {port}" in err.decode()
    assert "already in use" in err.decode()
    assert b"listening" not in out


async def test_classic_bucket_reads_raw_and_framed_spews() -> None:
    """Raw chunks stay readable by the tutorial's bucket; framed ones too, header escaped."""
    async with program(str(CLASSIC), "0") as classic:
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", await read_line(classic))
        assert match
        port = int(match[1])
        await spew("hello from asyncio", port=port)
        async with Emitter(port=port, framed=True) as emitter:
            await emitter.spew("framed hello")
        raw = await read_line(classic)
        framed = await read_line(classic)
        # SIGTERM, not SIGINT: a background shell may start us with SIGINT ignored,
        # and the classic bucket only stops on KeyboardInterrupt
        classic.terminate()
        await classic.wait()
    assert raw == "hello from asyncio"
    assert framed.startswith(repr(MAGIC)[2:-1])
    assert framed.endswith("framed hello")


async def test_classic_spew_reaches_the_asyncnet_bucket() -> None:
    async with Bucket(port=0) as bucket:
        text = "x" * 2500
        async with program(str(CLASSIC), str(bucket.address[1]), text) as classic:
            assert await classic.wait() == 0
        messages = []
        async with asyncio.timeout(10):
            async for message in bucket:
                messages.append(message)
                if len(messages) == 3:
                    break
    assert [len(m.data) for m in messages] == [1024, 1024, 452]
    assert b"".join(m.data for m in messages) == text.encode()
