"""A multi-user line chat: the room (hub), its line handler, and an interactive client.

This is the reusable part of the classic asynchat chat server.  A
:class:`ChatRoom` keeps its members by nickname and relays each line one member
says to every other member, prefixed with the speaker's nickname.  Pass its
:meth:`ChatRoom.handler` factory to a server::

    room = ChatRoom()
    run_servers(tcp_server(room.handler, port=9998))

Commands: ``/nick NAME``, ``/who``, ``/quit`` and ``/help``; a subclass of
:class:`ChatHandler` adds ``/word`` by defining ``command_word(self, args)``.

**Slow consumers.**  Relayed lines are written at once (``send_line``), so one member
that stops reading must not hold the room up or make the server buffer without
bound: before each relayed line the room checks how many bytes the member has not
read yet (``write_buffer_size``), and a member that is more than ``max_backlog``
bytes behind is disconnected, with a logged reason and a notice to the others.

**Bad input.**  Lines are decoded with ``errors="replace"``: a chat should not drop
somebody for one byte of Latin-1, so invalid UTF-8 becomes U+FFFD (the core's
:class:`~asyncnet.servers.LineHandler` default, strict decoding with an error reply
and a closed connection, is what the echo demo uses).  Control characters (ANSI
escapes, NUL, bidi overrides) are shown escaped, ``\\x1b``, so nobody can clear or
spoof other members' terminals.  A line longer than ``max_line_length`` (4 KiB) gets
an error reply and a closed connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import sys
from collections.abc import Callable
from typing import ClassVar, TextIO

from .clients.framed import FramedClient
from .console import stdin_lines
from .errors import AsyncNetError, format_peer
from .servers.handlers import LineHandler

__all__ = ["ChatHandler", "ChatRoom", "chat_session", "printable"]

logger = logging.getLogger("asyncnet.chat")

_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def printable(text: str) -> str:
    """``text`` with control characters (C0, DEL, C1, bidi controls) escaped as ``\\xNN``."""
    if text.isprintable():
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if (ch < " " or "\x7f" <= ch <= "\x9f" or ch in _BIDI_CONTROLS)
        else ch
        for ch in text
    )


class ChatHandler(LineHandler):
    """One member of a :class:`ChatRoom`: lines are relayed, ``/commands`` are answered."""

    errors: ClassVar[str] = "replace"
    max_line_length: ClassVar[int] = 4096
    max_nick_length: ClassVar[int] = 24

    def __init__(self, room: ChatRoom) -> None:
        self.room = room
        self.nick = ""

    def setup(self) -> None:
        self.room.join(self)

    def finish(self) -> None:
        self.room.leave(self, "has left")

    def greeting(self) -> str:
        """Welcome the new member and tell it its guest nickname."""
        return f"* welcome to {self.room.name}, {self.nick}; {self.room.usage}"

    def handle_line(self, line: str) -> str | None:
        """Relay a message to the others, or run a ``/command`` and return its reply."""
        text = printable(line.strip())
        if not text:
            return None
        if text.startswith("/"):
            word, _, args = text[1:].partition(" ")
            command: Callable[[str], str | None] | None = getattr(
                self, f"command_{word.lower()}", None
            )
            if command is None or not word.isidentifier():
                return f"! unknown command /{word}; {self.room.usage}"
            return command(args.strip())
        self.room.broadcast(f"{self.nick}: {text}", exclude=self)
        return None

    def command_nick(self, args: str) -> str:
        """/nick NAME: change your nickname."""
        old = self.nick
        problem = self.room.rename(self, args)
        if problem:
            return f"! {problem}"
        self.room.broadcast(f"* {old} is now known as {self.nick}", exclude=self)
        return f"* you are now {self.nick}"

    def command_who(self, args: str) -> str:
        """/who: list who is here."""
        names = self.room.nicknames()
        return f"* {len(names)} here: {', '.join(names)}"

    def command_quit(self, args: str) -> str:
        """/quit: leave the room."""
        self.close()
        return "* bye"

    def command_help(self, args: str) -> str:
        """/help: list the commands."""
        return f"* {self.room.usage}"


class ChatRoom:
    """Members by nickname; relays lines; disconnects members that stop reading.

    * ``max_backlog`` -- bytes a member may leave unread before it is disconnected
      as a slow consumer (default 64 KiB).
    * ``handler_class`` -- the :class:`ChatHandler` subclass each connection gets.
    """

    def __init__(
        self,
        *,
        name: str = "the chat",
        max_backlog: int = 64 * 1024,
        handler_class: type[ChatHandler] = ChatHandler,
    ) -> None:
        if max_backlog < 1:
            raise ValueError(f"max_backlog must be >= 1, not {max_backlog!r}")
        self.name = name
        self.max_backlog = max_backlog
        self.handler_class = handler_class
        self.members: dict[str, ChatHandler] = {}
        """Members by case-folded nickname."""
        self.slow_consumers = 0
        """How many members were disconnected for not reading."""
        self._guests = itertools.count(1)
        self._outbox: collections.deque[tuple[str, ChatHandler | None]] = collections.deque()
        self._relaying = False

    def handler(self) -> ChatHandler:
        """Handler factory for a stream server: ``tcp_server(room.handler)``."""
        return self.handler_class(self)

    @property
    def usage(self) -> str:
        """One line listing the commands members can use."""
        words = sorted(n[8:] for n in dir(self.handler_class) if n.startswith("command_"))
        return "commands: " + ", ".join(f"/{w}" for w in words)

    def nicknames(self) -> list[str]:
        """The members' nicknames, sorted."""
        return sorted((m.nick for m in self.members.values()), key=str.casefold)

    def join(self, member: ChatHandler) -> None:
        """Give ``member`` a guest nickname and announce it."""
        while (nick := f"guest{next(self._guests)}").casefold() in self.members:
            pass
        member.nick = nick
        self.members[nick.casefold()] = member
        logger.info("%s joined as %s", format_peer(member.peer), nick)
        self.broadcast(f"* {nick} has joined", exclude=member)

    def leave(self, member: ChatHandler, why: str) -> None:
        """Remove ``member`` (if still present) and tell the others ``why``."""
        if self.members.get(member.nick.casefold()) is member:
            del self.members[member.nick.casefold()]
            self.broadcast(f"* {member.nick} {why}")

    def rename(self, member: ChatHandler, nick: str) -> str | None:
        """Change ``member``'s nickname; return what is wrong with ``nick``, or ``None``."""
        limit = member.max_nick_length
        if not nick or len(nick) > limit or not nick.isprintable() or " " in nick:
            return f"a nickname is 1 to {limit} printable characters without spaces"
        if nick[0] in "/*!":
            return "a nickname cannot start with /, * or !"
        holder = self.members.get(nick.casefold())
        if holder is not None and holder is not member:
            return f"{nick} is taken"
        del self.members[member.nick.casefold()]
        member.nick = nick
        self.members[nick.casefold()] = member
        return None

    def broadcast(self, text: str, *, exclude: ChatHandler | None = None) -> None:
        """Send ``text`` to every member except ``exclude``; drop members that lag behind.

        Lines queue in a room-wide outbox, so a notice produced while relaying
        (somebody was disconnected) goes out after the line being relayed, and
        disconnecting members never recurses.
        """
        self._outbox.append((text, exclude))
        if self._relaying:
            return
        self._relaying = True
        try:
            while self._outbox:
                line, skip = self._outbox.popleft()
                size = len(line.encode(self.handler_class.encoding, "replace")) + 2
                for member in list(self.members.values()):
                    if member is not skip and self.members.get(member.nick.casefold()) is member:
                        self._deliver(member, line, size)
        finally:
            self._relaying = False

    def _deliver(self, member: ChatHandler, line: str, size: int) -> None:
        backlog = member.write_buffer_size
        if backlog + size <= self.max_backlog:
            member.send_line(line)
            return
        self.slow_consumers += 1
        del self.members[member.nick.casefold()]
        # abort, not close: close() would wait for a flush that never comes
        member.abort(
            f"slow consumer {member.nick!r}, {backlog} bytes unread (max_backlog "
            f"{self.max_backlog})"
        )
        self._outbox.append((f"* {member.nick} was disconnected (not reading)", None))


async def chat_session(
    host: str,
    port: int,
    *,
    timeout: float = 10.0,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """The interactive client: print what the room says while you type your lines.

    End of input sends ``/quit``.  ``timeout`` bounds the connect and each send (a
    chat waits for incoming lines as long as it takes).  Returns an exit status.
    """
    out = stdout or sys.stdout
    try:
        client = await FramedClient.connect(host, port, terminator=b"\n", timeout=timeout)
    except AsyncNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    async def incoming() -> None:
        while (frame := await client.read_frame(timeout=None)) is not None:
            line = printable(frame.decode("utf-8", "replace").removesuffix("\r"))
            print(line, file=out, flush=True)

    async def outgoing() -> None:
        async for line in stdin_lines(stdin):
            await client.send_frame(line.encode())
            if line.strip().lower() == "/quit":
                return
        await client.send_frame(b"/quit")

    async with client:
        listener = asyncio.create_task(incoming())
        typist = asyncio.create_task(outgoing())
        try:
            await asyncio.wait({listener, typist}, return_when=asyncio.FIRST_COMPLETED)
            if listener.done():
                listener.result()  # the server closed: re-raise a read error, if any
            else:
                typist.result()  # re-raise a send error, if any
                async with client.deadline(timeout, "quit"):
                    await listener  # the server answers /quit, then closes
        except AsyncNetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            for task in (listener, typist):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, AsyncNetError):
                    await task
    return 0
