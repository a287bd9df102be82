"""A scripted fake POP3 server for the client tests: RFC semantics plus injected faults."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Any

from asyncnet.protocols import dot_stuff

Script = Callable[["FakePOP3", asyncio.StreamReader, asyncio.StreamWriter], Any]


class FakePOP3:
    """A maildrop shared by every connection; deletions apply only on QUIT (RFC 1939).

    ``faults`` are consumed once each, in any session:

    * ``"drop_mid_retr"`` -- send half of a RETR reply and close;
    * ``"drop_after_dele"`` -- answer the first DELE, then close (no QUIT);
    * ``"lose_quit_reply"`` -- apply the deletions on QUIT, then close without ``+OK``;
    * ``"drop_before_quit"`` -- close when QUIT arrives, deleting nothing.
    """

    def __init__(
        self,
        messages: dict[str, bytes] | None = None,
        *,
        faults: list[str] | None = None,
        greeting: bytes = b"+OK fake POP3 <123.456@fake>\r\n",
        script: Script | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.messages = dict(messages or {})  # uid -> message (CRLF)
        self.faults = list(faults or [])
        self.greeting = greeting
        self.script = script
        self.tls = tls
        self.received = bytearray()
        self.commands: list[str] = []
        self.sessions = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> FakePOP3:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _fault(self, name: str) -> bool:
        if name in self.faults:
            self.faults.remove(name)
            return True
        return False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.sessions += 1
        try:
            if self.script is not None:
                await self.script(self, reader, writer)
            else:
                await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            # Swallowed on purpose: a cancelled start_server callback task makes
            # asyncio log "Exception in callback" on 3.11.
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
            self._tasks.discard(task)

    async def readline(self, reader: asyncio.StreamReader) -> str | None:
        """One command line (recorded), or None at EOF."""
        line = await reader.readline()
        if not line:
            return None
        self.received += line
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        self.commands.append(text)
        return text

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.greeting:
            return  # hang up at once
        writer.write(self.greeting)
        uids = list(self.messages)
        deleted: set[int] = set()
        while (line := await self.readline(reader)) is not None:
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            reply: bytes
            if verb in ("USER", "PASS", "NOOP", "RSET"):
                if verb == "RSET":
                    deleted.clear()
                reply = b"+OK\r\n"
            elif verb == "CAPA":
                reply = b"+OK\r\nUIDL\r\nTOP\r\n" + (b"STLS\r\n" if self.tls else b"") + b".\r\n"
            elif verb == "STLS" and self.tls is not None:
                writer.write(b"+OK begin TLS\r\n")
                await writer.drain()
                await writer.start_tls(self.tls)
                continue
            elif verb == "STAT":
                live = [self.messages[u] for i, u in enumerate(uids, 1) if i not in deleted]
                reply = b"+OK %d %d\r\n" % (len(live), sum(map(len, live)))
            elif verb == "UIDL":
                reply = b"+OK\r\n" + b"".join(
                    b"%d %s\r\n" % (i, u.encode())
                    for i, u in enumerate(uids, 1)
                    if i not in deleted
                )
                reply += b".\r\n"
            elif verb == "LIST":
                reply = b"+OK\r\n" + b"".join(
                    b"%d %d\r\n" % (i, len(self.messages[u]))
                    for i, u in enumerate(uids, 1)
                    if i not in deleted
                )
                reply += b".\r\n"
            elif verb == "RETR":
                data = self.messages[uids[int(arg) - 1]]
                wire = b"+OK %d octets\r\n" % len(data) + dot_stuff(data)
                if self._fault("drop_mid_retr"):
                    writer.write(wire[: len(wire) // 2])
                    await writer.drain()
                    return
                reply = wire
            elif verb == "DELE":
                deleted.add(int(arg))
                writer.write(b"+OK deleted\r\n")
                await writer.drain()
                if self._fault("drop_after_dele"):
                    return
                continue
            elif verb == "QUIT":
                if self._fault("drop_before_quit"):
                    return
                for i in sorted(deleted):
                    self.messages.pop(uids[i - 1], None)
                if self._fault("lose_quit_reply"):
                    return
                writer.write(b"+OK bye\r\n")
                await writer.drain()
                return
            else:
                reply = b"-ERR unknown\r\n"
            writer.write(reply)
            await writer.drain()


@contextlib.asynccontextmanager
async def scripted(script: Script, **options: Any):  # type: ignore[no-untyped-def]
    """A fake whose every connection runs ``script(fake, reader, writer)``."""
    async with FakePOP3(script=script, **options) as fake:
        yield fake
