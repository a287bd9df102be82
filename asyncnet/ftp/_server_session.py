"""The embedded FTP server's session loop: one client's commands, replies and transfers.

aioftp's own loop (``Server.dispatcher``) reads the next command while the last one
runs as a task and writes replies from a second task.  When several of its tasks end
in the same loop turn it takes their results one by one and leaves at the first
exception, and the tasks it cancels on the way out it waits for with
:func:`asyncio.wait`, which takes no outcome.  So a client that drops its control and
data connections together (Ctrl-C mid-transfer: the read of the next command and the
transfer both fail at once) left one task's exception for the loop to report at
garbage collection: "Task exception was never retrieved", a ``ConnectionResetError``
in a replay on loopback (every time, on asyncio's loop and on uvloop), or uvloop's
"RuntimeError: unable to perform operation on <TCPTransport closed=True ...>; the
handler is closed" when the transfer's write is what fails.  And every hang-up was
logged as a traceback ("dispatcher caught exception").

This loop keeps aioftp's command methods and its per-session :class:`Connection`
but runs one command at a time, in order, with transfers in the background:

* every task it starts (the read of the next command, each transfer) has its result
  or exception taken, on every path out of the session;
* a reply is written at once, in order, and the buffer is drained after each
  command (bounded by ``socket_timeout``); nothing is written to a closed connection;
* a client that hangs up or resets ends its session with one debug line, as does
  one silent past ``idle_timeout`` seconds with no transfer under way (after a
  ``421``); a transfer cut by the client is ``426``;
* a command line longer than ``max_line`` bytes is ``500`` and the end of the session:
  after an over-long line the stream's next "line" would be its tail, a command the
  client never sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

import aioftp
from aioftp.common import END_OF_LINE, Connection, ThrottleStreamIO

__all__ = ["SessionLoop", "SessionOver", "logger"]

logger = logging.getLogger("asyncnet.ftp.server")

_CLOSE_TIMEOUT = 5.0
"""Seconds a closing session waits for its socket to close before moving on."""


def _take_outcome(task: asyncio.Task[Any]) -> None:
    """Mark a finished task's outcome as seen (its exception is of no further use)."""
    if not task.cancelled():
        task.exception()


class SessionOver(Exception):
    """The client is gone or silent: the session ends with one debug line."""


class _Replies:
    """A session's reply writer: formats aioftp's ``connection.response`` calls.

    Replies are written straight into the transport in the order they are made, so
    no task can fail writing them after the session ended; ``flush()`` applies
    back-pressure once per command.
    """

    def __init__(self, writer: asyncio.StreamWriter, encoding: str, timeout: float | None) -> None:
        self.writer = writer
        self.encoding = encoding
        self.timeout = timeout

    def __call__(self, code: str, lines: str | Iterable[str] = "", list: bool = False) -> None:
        """Write one reply; as a listing (``list=True``: body lines indented) if asked."""
        if self.writer.is_closing():
            return  # the session is over; a late transfer's 226 has no one to go to
        texts = [lines] if isinstance(lines, str) else [str(line) for line in lines] or [""]
        if list:
            head, *body, tail = texts
            out = [f"{code}-{head}", *(f" {line}" for line in body), f"{code} {tail}"]
        else:
            *body, tail = texts
            out = [*(f"{code}-{line}" for line in body), f"{code} {tail}"]
        for line in out:
            logger.debug("reply %s", line)
        self.writer.write("".join(line + END_OF_LINE for line in out).encode(self.encoding))

    async def flush(self) -> None:
        """Wait until the transport has taken the replies (``socket_timeout`` at most)."""
        try:
            async with asyncio.timeout(self.timeout):
                await self.writer.drain()
        except TimeoutError as exc:
            raise SessionOver("does not read its replies") from exc
        except (ConnectionError, OSError, RuntimeError) as exc:
            # RuntimeError: uvloop's "the handler is closed" for a reset connection
            raise SessionOver(f"connection lost ({type(exc).__name__})") from exc


class SessionLoop(aioftp.Server):
    """``aioftp.Server`` whose sessions run through :meth:`dispatcher` below.

    ``max_line`` bounds one command line in bytes (the control stream's limit).
    """

    def __init__(self, *args: Any, max_line: int = 4096, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_line = max_line
        self.sessions: set[asyncio.Task[Any]] = set()

    async def start(self, host: str | None = None, port: int = 0, **kwargs: Any) -> None:
        """Listen; command lines are bounded by ``max_line`` (the stream limit)."""
        kwargs.setdefault("limit", self.max_line)
        await super().start(host, port, **kwargs)

    async def close(self) -> None:
        """Stop listening, end every session, and wait for both."""
        self.server.close()
        sessions = list(self.sessions)
        for session in sessions:
            session.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)
        await self.server.wait_closed()

    async def dispatcher(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client's session, from greeting to goodbye."""
        task = asyncio.current_task()
        assert task is not None
        self.sessions.add(task)
        try:
            await self._session(reader, writer)
        except asyncio.CancelledError:
            # The server is closing.  Returning, rather than re-raising, keeps
            # asyncio's start_server callback from reporting a cancelled handler
            # as "Exception in callback" on Python 3.11.
            pass
        finally:
            self.sessions.discard(task)

    def new_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, replies: _Replies
    ) -> Connection:
        """aioftp's per-session state, as its command methods expect it."""
        host, port = (writer.get_extra_info("peername") or ("", 0))[:2]
        server_host = (writer.get_extra_info("sockname") or ("", 0))[0]
        stream = ThrottleStreamIO(
            reader,
            writer,
            throttles={
                "server_global": self.throttle,
                "server_per_connection": self.throttle_per_connection.clone(),
            },
            read_timeout=self.idle_timeout,
            write_timeout=self.socket_timeout,
        )
        connection = Connection(
            client_host=host,
            client_port=port,
            server_host=server_host,
            passive_server_port=0,
            server_port=self.server_port,
            command_connection=stream,
            socket_timeout=self.socket_timeout,
            idle_timeout=self.idle_timeout,
            wait_future_timeout=self.wait_future_timeout,
            block_size=self.block_size,
            path_io_factory=self.path_io_factory,
            path_timeout=self.path_timeout,
            extra_workers=set(),
            response=replies,
            acquired=False,
            restart_offset=0,
        )
        connection.path_io = self.path_io_factory(timeout=self.path_timeout, connection=connection)
        return connection

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        replies = _Replies(writer, self.encoding, self.socket_timeout)
        connection = self.new_connection(reader, writer, replies)
        host, port = connection.client_host, connection.client_port
        peer = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reading: asyncio.Task[tuple[str, str]] | None = None
        ending = "ended"
        try:
            if not await self.greeting(connection, ""):
                await replies.flush()
                return
            await replies.flush()
            while True:
                if reading is None:
                    reading = asyncio.create_task(self._read_command(connection))
                workers: set[asyncio.Task[Any]] = connection.extra_workers
                done, _ = await asyncio.wait(
                    {reading, *workers},
                    timeout=self.idle_timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done and not workers:  # neither a command nor a transfer
                    connection.response("421", f"idle for {self.idle_timeout:g} s, closing")
                    await replies.flush()
                    raise SessionOver("was idle too long")
                for worker in done - {reading}:
                    workers.discard(worker)
                    self._transfer_ended(connection, worker, peer)
                if reading in done:
                    verb, argument = reading.result()
                    reading = None
                    if not await self.run_command(connection, verb, argument, peer):
                        await replies.flush()
                        ending = f"ended after {verb.upper()}"
                        return
                await replies.flush()
        except SessionOver as over:
            ending = f"ended: the client {over}"
        except asyncio.CancelledError:
            ending = "closed by the server"
            raise
        finally:
            await self._end(connection, reading, writer)
            logger.debug("ftp session with %s %s", peer, ending)

    async def _read_command(self, connection: Connection) -> tuple[str, str]:
        """The next command as (lower-case verb, argument); SessionOver when none can come."""
        stream: ThrottleStreamIO = connection.command_connection
        try:
            line = await stream.reader.readline()
        except ValueError as exc:  # LimitOverrunError / "chunk exceed the limit"
            connection.response("500", f"command line longer than {self.max_line} bytes")
            raise SessionOver("sent an over-long command line") from exc
        except (ConnectionError, OSError) as exc:
            raise SessionOver(f"reset the connection ({type(exc).__name__})") from exc
        if not line:
            raise SessionOver("closed the connection")
        if not line.endswith(b"\n"):
            raise SessionOver("closed the connection mid-command")
        text = line.rstrip(b"\r\n").decode(self.encoding, errors="replace")
        verb, _, argument = text.partition(" ")
        verb = verb.lower()
        logger.debug("command %s %s", verb, "****" if verb == "pass" else argument)
        return verb, argument

    async def run_command(
        self, connection: Connection, verb: str, argument: str, peer: str
    ) -> bool:
        """Run one command to its reply; False when the session should end after it."""
        if verb not in ("rest", "retr", "stor", "appe"):
            connection.restart_offset = 0  # REST applies to the next transfer only
        handler = self.commands_mapping.get(verb)
        if handler is None:
            connection.response("502", "command not implemented")
            return True
        try:
            return bool(await handler(connection, argument))
        except SessionOver:
            raise
        except aioftp.PathIOError as exc:
            logger.info("ftp %s: file system error in %s: %s", peer, verb.upper(), exc.reason)
            connection.response("451", "file system error")
        except Exception:
            logger.exception("ftp %s: %s failed", peer, verb.upper())
            connection.response("451", "local error in processing")
        return True

    def _transfer_ended(self, connection: Connection, worker: asyncio.Task[Any], peer: str) -> None:
        """Take a finished transfer's outcome; reply for the ways it can fail."""
        if worker.cancelled():
            return
        exc = worker.exception()
        if exc is None:
            return
        if isinstance(exc, aioftp.PathIOError):
            logger.info("ftp %s: file system error in a transfer: %s", peer, exc.reason)
            connection.response("451", "file system error")
        elif isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            logger.debug("ftp %s: data connection lost (%s)", peer, type(exc).__name__)
            connection.response("426", "data connection closed; transfer aborted")
        else:
            logger.error("ftp %s: transfer failed", peer, exc_info=exc)
            connection.response("451", "local error in processing")

    async def _end(
        self,
        connection: Connection,
        reading: asyncio.Task[Any] | None,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Stop the session's tasks (taking every outcome) and release what it holds."""
        tasks = {*connection.extra_workers, *([reading] if reading is not None else [])}
        for task in tasks:
            # Each outcome is taken as the task ends, however this session ends
            # (even cancelled itself while waiting below): none is left for the
            # loop to report as "Task exception was never retrieved".
            task.add_done_callback(_take_outcome)
            task.cancel()
        if connection.future.passive_server.done():
            connection.passive_server.close()
            if self.available_data_ports is not None:
                self.available_data_ports.put_nowait((0, connection.passive_server_port))
        if connection.future.data_connection.done():
            connection.data_connection.close()
        if connection.acquired:
            self.available_connections.release()
        writer.close()
        if connection.future.user.done():
            await self.user_manager.notify_logout(connection.user)
        # Bounded, and quiet: a socket that fails as it closes is already closed.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await asyncio.gather(*tasks, return_exceptions=True)
                await writer.wait_closed()
