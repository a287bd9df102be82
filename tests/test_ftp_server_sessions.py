"""The embedded FTP server when clients misbehave: hang-ups, resets, silence, long lines.

Each test drives asyncnet's FTPServer (on 127.0.0.1:0, in the test's loop) over a raw
control connection, on asyncio's loop and on uvloop (whose transports raise where
asyncio's drop bytes).  The suite's loop-exception collector fails any test after
which a task's exception was left unretrieved.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncnet.ftp import FTPServer

from .ftp_server_raw import TIMEOUT, Control, control, reset

pytestmark = [pytest.mark.all_loops, pytest.mark.timeout(30)]

USERS = {"guest": "s3cret"}
BIG = 4 * 1024 * 1024
SLOW: dict[str, Any] = {
    "write_speed_limit": 256 * 1024
}  # 4 MiB takes 16 s: a transfer surely under way


class SessionLog(logging.Handler):
    """The server logger's records; ``ended`` is set when a session's end is logged."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.ended = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if record.getMessage().startswith("ftp session with"):
            self.ended.set()

    async def wait_ended(self) -> str:
        async with asyncio.timeout(TIMEOUT):
            await self.ended.wait()
        return self.endings()[0]

    def endings(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.getMessage().startswith("ftp session")]

    def loud(self) -> list[str]:
        """Records above debug, or with a traceback: none is expected for a hang-up
        (aioftp's own "serving on" at start-up aside)."""
        return [
            r.getMessage()
            for r in self.records
            if (r.levelno > logging.DEBUG or r.exc_info) and r.msg != "serving on %s:%s"
        ]


@pytest.fixture
def session_log() -> Iterator[SessionLog]:
    handler = SessionLog()
    loggers = [logging.getLogger("asyncnet.ftp.server"), logging.getLogger("aioftp")]
    saved = [log.level for log in loggers]
    for log in loggers:
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
    yield handler
    for log, level in zip(loggers, saved, strict=True):
        log.removeHandler(handler)
        log.setLevel(level)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    served = tmp_path / "served"
    served.mkdir()
    (served / "big.bin").write_bytes(bytes(range(256)) * (BIG // 256))
    (served / "small.txt").write_bytes(b"small\n")
    return served


async def start_retr(ftp: Control) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Log in, open a data connection and start RETR big.bin; the first bytes have come."""
    await ftp.login("guest", USERS["guest"])
    assert (await ftp.send("TYPE I")).startswith("200")
    data = await ftp.passive()
    assert (await ftp.send("RETR big.bin")).startswith("150")
    async with asyncio.timeout(TIMEOUT):
        assert await data[0].read(1024)
    return data


async def still_serves(address: tuple[str, int]) -> None:
    """A new client logs in and gets an answer."""
    async with control(address) as ftp:
        await ftp.login("guest", USERS["guest"])
        assert (await ftp.send("NOOP")).startswith("200")


async def test_a_reset_data_connection_is_426_and_the_session_goes_on(
    root: Path, session_log: SessionLog
) -> None:
    """S3 for the data connection: the client resets it mid-RETR; the control
    connection gets 426, the session answers the next command, nothing is logged
    above debug, and no task's exception is left for the loop to report."""
    async with FTPServer(root, users=USERS, **SLOW) as server, control(server.address) as ftp:
        _, data = await start_retr(ftp)
        reset(data)
        assert (await ftp.reply()).startswith("426")
        assert (await ftp.send("NOOP")).startswith("200")
        assert (await ftp.send("QUIT")).startswith("221")
        port = ftp.writer.get_extra_info("sockname")[1]
        assert (
            await session_log.wait_ended() == f"ftp session with 127.0.0.1:{port} ended after QUIT"
        )
    assert any("data connection lost" in r.getMessage() for r in session_log.records)
    assert not session_log.loud()


async def test_a_client_reset_mid_transfer_is_one_debug_line(
    root: Path, session_log: SessionLog
) -> None:
    """S3 for the control connection: an RST while a transfer runs ends the session
    with one debug line (no traceback), and the server serves the next client."""
    async with FTPServer(root, users=USERS, **SLOW) as server:
        async with control(server.address) as ftp:
            await start_retr(ftp)
            ftp.reset()
            ending = await session_log.wait_ended()
        assert "ended: the client reset the connection" in ending
        assert len(session_log.endings()) == 1
        await still_serves(server.address)
    assert not session_log.loud()


async def test_a_hang_up_mid_command_is_one_debug_line(root: Path, session_log: SessionLog) -> None:
    """S4: half a command, then EOF: the session ends quietly, the command unrun."""
    async with FTPServer(root, users=USERS) as server:
        async with control(server.address) as ftp:
            await ftp.login("guest", USERS["guest"])
            ftp.writer.write(b"DELE small.txt")  # no line end: never a whole command
            ftp.writer.write_eof()
            ending = await session_log.wait_ended()
        assert ending.endswith("ended: the client closed the connection mid-command")
        assert (root / "small.txt").exists()
    assert not session_log.loud()


async def test_a_hang_up_between_commands_is_one_debug_line(
    root: Path, session_log: SessionLog
) -> None:
    async with FTPServer(root, users=USERS) as server:
        async with control(server.address) as ftp:
            await ftp.login("guest", USERS["guest"])
        assert (await session_log.wait_ended()).endswith("ended: the client closed the connection")
    assert len(session_log.endings()) == 1
    assert not session_log.loud()


async def test_an_over_long_command_line_is_500_and_the_end_of_the_session(
    root: Path, session_log: SessionLog
) -> None:
    """S1: a 6000-byte line in two pieces, then a command: 500 and closed; the tail of
    the long line is never run as a command of its own."""
    async with FTPServer(root, users=USERS) as server:
        async with control(server.address) as ftp:
            await ftp.login("guest", USERS["guest"])
            ftp.writer.write(b"NOOP " + b"x" * 3000)
            await ftp.writer.drain()
            ftp.writer.write(b"x" * 3000 + b" DELE small.txt\r\nDELE small.txt\r\n")
            assert (await ftp.reply()).startswith("500")
            async with asyncio.timeout(TIMEOUT):
                assert await ftp.reader.read() == b""
        assert "over-long command line" in await session_log.wait_ended()
        await still_serves(server.address)
    assert (root / "small.txt").exists()


async def test_a_silent_client_gets_421_after_the_idle_timeout(root: Path) -> None:
    async with FTPServer(root, users=USERS, idle_timeout=0.3) as server:
        async with control(server.address) as ftp:
            await ftp.login("guest", USERS["guest"])
            async with asyncio.timeout(5):
                assert (await ftp.reply()).startswith("421")
                assert await ftp.reader.read() == b""


@pytest.mark.slow
async def test_a_transfer_under_way_is_not_idleness(root: Path) -> None:
    """The idle timeout counts time with neither a command nor a transfer: a long
    RETR outlives it, and the 226 still comes."""
    (root / "mid.bin").write_bytes(b"m" * 256 * 1024)
    throttle: dict[str, Any] = {"write_speed_limit": 256 * 1024}  # one second for mid.bin
    async with FTPServer(root, users=USERS, idle_timeout=0.3, **throttle) as server:
        async with control(server.address) as ftp:
            await ftp.login("guest", USERS["guest"])
            assert (await ftp.send("TYPE I")).startswith("200")
            reader, _ = await ftp.passive()
            assert (await ftp.send("RETR mid.bin")).startswith("150")
            async with asyncio.timeout(TIMEOUT):
                assert len(await reader.read()) == 256 * 1024
            assert (await ftp.reply()).startswith("226")


async def test_stopping_the_server_mid_transfer_leaves_nothing_unretrieved(root: Path) -> None:
    """The office demo's Ctrl-C: the server stops while transfers run and their
    clients reset; every session ends and no task's exception reaches the loop."""
    async with FTPServer(root, users=USERS, **SLOW) as server:
        async with control(server.address) as one, control(server.address) as two:
            _, data_one = await start_retr(one)
            await start_retr(two)
            reset(data_one)
            two.reset()
            async with asyncio.timeout(TIMEOUT):
                await server.stop()


@pytest.mark.parametrize("hang_up", ["reset", "close"])
async def test_a_client_gone_from_both_connections_at_once_leaves_nothing_unretrieved(
    root: Path, session_log: SessionLog, hang_up: str
) -> None:
    """S3: the client drops the data and the control connection together while the
    server is writing (the office demo's Ctrl-C): the read of the next command and the
    transfer fail in the same loop turn.  aioftp's own loop took the first failure and
    left the other task's exception for the loop to report ("Task exception was never
    retrieved"); here the session ends with one debug line and nothing reaches the loop."""
    (root / "huge.bin").write_bytes(b"h" * 32 * 1024 * 1024)  # more than the socket buffers
    async with FTPServer(root, users=USERS) as server:
        async with control(server.address) as ftp:
            await ftp.login("guest", USERS["guest"])
            assert (await ftp.send("TYPE I")).startswith("200")
            data_reader, data_writer = await ftp.passive()
            assert (await ftp.send("RETR huge.bin")).startswith("150")
            async with asyncio.timeout(TIMEOUT):
                assert await data_reader.read(1)  # under way; from now on never read
            if hang_up == "reset":
                reset(data_writer)
                ftp.reset()
            else:
                data_writer.close()
                ftp.writer.close()
            ending = await session_log.wait_ended()
        assert "ended: the client" in ending
        await still_serves(server.address)
    assert len(session_log.endings()) == 2  # this client's, then still_serves'
    assert not session_log.loud()
