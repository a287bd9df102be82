"""A scripted FTP control server on 127.0.0.1 for the fault tests (F1-F4).

Real servers (aioftp, pyftpdlib, vsftpd) do not misbehave on request; this one
does, one behaviour per option.  It records every command line it receives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DataAction = Callable[[asyncio.StreamWriter], Any]


@dataclass
class FakeFTP:
    """Files and listings to serve, and the ways to misbehave while serving them."""

    files: dict[str, bytes] = field(default_factory=dict)
    listings: dict[str, list[bytes]] = field(default_factory=dict)
    epsv: bool = True
    mlsd: bool = True
    pasv_host: str = "127,0,0,1"
    mdtm: str = "20240101000000"
    size_override: dict[str, int] = field(default_factory=dict)
    abort_first_retr_at: float | None = None
    """Close the data connection after this fraction of the first RETR, then say 426."""
    abort_reply: bytes = b"426 connection closed; transfer aborted\r\n"
    """What follows the aborted RETR on the control connection (b"": it closes too)."""
    stall_retr_after: int | None = None
    """Send this many bytes of a RETR, then nothing more (the data connection stays open)."""
    short_retr_with_226: int | None = None
    """Send only this many bytes of every RETR but still reply 226 (a lying server)."""
    greeting: bytes = b"220 fake ftp\r\n"
    endless_preliminary: bool = False
    """Answer RETR with an endless "150-" multi-line reply (bounded here at 50 000)."""
    depth_loop: bool = False
    """Every directory listing holds one more directory "d" (d/d/d/...)."""
    replies: dict[str, bytes] = field(default_factory=dict)
    """A fixed reply for a verb (``{"MLSD": b"550 ...\\r\\n"}``), instead of serving it."""
    commands: list[str] = field(default_factory=list)
    data_peers: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._retr_count = 0
        self._sessions: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def __aenter__(self) -> FakeFTP:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._sessions):
            task.cancel()
        for task in list(self._sessions):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        data: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None = None
        listener: asyncio.Server | None = None
        rest = 0
        try:
            writer.write(self.greeting)
            while line := await reader.readline():
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                self.commands.append(text)
                verb, _, arg = text.partition(" ")
                verb = verb.upper()
                reply = b""
                if verb in self.replies:
                    reply = self.replies[verb]
                elif verb == "USER":
                    reply = b"331 password please\r\n"
                elif verb == "PASS":
                    reply = b"230 welcome\r\n"
                elif verb == "TYPE":
                    reply = b"200 ok\r\n"
                elif verb in ("EPSV", "PASV"):
                    if verb == "EPSV" and not self.epsv:
                        reply = b"500 EPSV not understood\r\n"
                    else:
                        if listener is not None:
                            listener.close()
                        self._close_unused(data)
                        data, listener = await self._data_listener()
                        port = listener.sockets[0].getsockname()[1]
                        if verb == "EPSV":
                            reply = f"229 Entering Extended Passive Mode (|||{port}|)\r\n".encode()
                        else:
                            reply = (
                                f"227 Entering Passive Mode ({self.pasv_host},"
                                f"{port >> 8},{port & 255})\r\n"
                            ).encode()
                elif verb == "SIZE":
                    if arg in self.files:
                        size = self.size_override.get(arg, len(self.files[arg]))
                        reply = f"213 {size}\r\n".encode()
                    else:
                        reply = b"550 no such file\r\n"
                elif verb == "MDTM":
                    reply = f"213 {self.mdtm}\r\n".encode() if arg in self.files else b"550 no\r\n"
                elif verb == "REST":
                    rest = int(arg)
                    reply = b"350 restarting\r\n"
                elif verb == "RETR" and data is not None:
                    await self._retr(writer, data, arg, rest)
                    self._close_unused(data)
                    rest, data = 0, None
                elif verb in ("MLSD", "LIST") and data is not None:
                    if verb == "MLSD" and not self.mlsd:
                        reply = b"500 MLSD not understood\r\n"
                    else:
                        await self._listing(writer, data, arg)
                        data = None
                elif verb == "QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    break
                else:
                    reply = b"500 not understood\r\n"
                writer.write(reply)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if listener is not None:
                listener.close()
            self._close_unused(data)
            writer.close()
            self._sessions.discard(task)

    @staticmethod
    def _close_unused(data: asyncio.Future[Any] | None) -> None:
        if data is not None and data.done():
            data.result()[1].close()

    async def _data_listener(
        self,
    ) -> tuple[asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]], asyncio.Server]:
        future: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.get_running_loop().create_future()
        )

        def accepted(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.data_peers.append(w.get_extra_info("peername"))
            if not future.done():
                future.set_result((r, w))
            else:
                w.close()

        return future, await asyncio.start_server(accepted, "127.0.0.1", 0)

    async def _retr(
        self,
        control: asyncio.StreamWriter,
        data: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
        name: str,
        rest: int,
    ) -> None:
        if name not in self.files:
            control.write(b"550 no such file\r\n")
            return
        if self.endless_preliminary:
            for n in range(50_000):
                control.write(f"150-still preparing {n}\r\n".encode())
                await control.drain()
            return
        control.write(b"150 opening data connection\r\n")
        _, data_writer = await asyncio.wait_for(data, 5)
        body = self.files[name][rest:]
        self._retr_count += 1
        final = b"226 transfer complete\r\n"
        if self.abort_first_retr_at is not None and self._retr_count == 1:
            body = body[: int(len(self.files[name]) * self.abort_first_retr_at)]
            final = self.abort_reply
        elif self.short_retr_with_226 is not None:
            body = body[: self.short_retr_with_226]
        if self.stall_retr_after is not None:
            data_writer.write(body[: self.stall_retr_after])
            await data_writer.drain()
            await asyncio.sleep(30)  # stalls until the client gives up and the test ends
        data_writer.write(body)
        await data_writer.drain()
        data_writer.close()
        await data_writer.wait_closed()
        if not final:
            control.close()
        control.write(final)

    async def _listing(
        self,
        control: asyncio.StreamWriter,
        data: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
        path: str,
    ) -> None:
        control.write(b"150 listing\r\n")
        _, data_writer = await asyncio.wait_for(data, 5)
        if self.depth_loop:
            lines = [b"type=dir;modify=20240101000000; d"]
        else:
            lines = self.listings.get(path, [])
        data_writer.write(b"".join(line + b"\r\n" for line in lines))
        await data_writer.drain()
        data_writer.close()
        await data_writer.wait_closed()
        control.write(b"226 listing done\r\n")
