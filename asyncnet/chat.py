"""A multi-user line chat: the room (hub), its line handler, and an interactive client.

This is the reusable part of the classic asynchat chat server.  A
:class:`ChatRoom` keeps its members by nickname and relays each line one member
says to every other member, prefixed with the speaker's nickname.  Pass its
:meth:`ChatRoom.handler` factory to a server::

    room = ChatRoom()
    run_servers(tcp_server(room.handler, port=9998))

:class:`ChatHandler` is a :class:`~asyncnet.servers._commands.CommandHandler` with
``command_prefix = "/"``: ``/nick NAME``, ``/who``, ``/quit`` and ``/help`` are its
``do_NICK`` ... methods, and a subclass adds ``/word`` by defining ``do_WORD(self, args)``.

**Who said what.**  The room's own notices start with ``* ``, its error replies with
``! ``; what members produce cannot: speech is ``nick: text`` and an action
(:meth:`ChatRoom.act`, the demo's ``/me``) is ``~ nick text``, and a nickname cannot
start with ``/``, ``*``, ``!`` or ``~``.  Nicknames are NFKC-normalised, visible
characters only, and refused when they look like a present member's
(:func:`~asyncnet.text.nickname_problem`: ``alice`` spelt with a Cyrillic U+0430).

**Slow consumers.**  Relayed lines are written at once (``send_line``), so one member
that stops reading must not hold the room up or make the server buffer without
bound: before each relayed line the room checks how many bytes the member has not
read yet (``write_buffer_size``), and a member that is more than ``max_backlog``
bytes behind is disconnected, with a logged reason and a notice to the others.

**Bad input.**  Lines are decoded with ``errors="replace"``: a chat should not drop
somebody for one byte of Latin-1, so invalid UTF-8 becomes U+FFFD (the core's
:class:`~asyncnet.servers.LineHandler` default, strict decoding with an error reply
and a closed connection, is what the echo demo uses).  Control characters (ANSI
escapes, NUL, bidi overrides, U+2028/U+2029) are shown escaped, ``\\x1b``, so nobody
can clear or spoof other members' terminals (:func:`~asyncnet.text.printable`).  A
line longer than ``max_line_length`` (4 KiB) gets an error reply and a closed
connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import sys
from typing import ClassVar, TextIO

from .clients import FramedClient, stdin_lines
from .errors import AsyncNetError, ConfigurationError, format_peer
from .servers import CommandHandler, Reply
from .text import line_bytes, nickname_problem, normalize_nickname, printable

__all__ = ["ChatHandler", "ChatRoom", "chat_session", "printable"]

logger = logging.getLogger("asyncnet.chat")

NOTICE = "* "
"""What starts the room's own notices (members' lines never do)."""
ERROR = "! "
"""What starts the room's error replies."""
ACTION = "~ "
"""What starts a member's action (``/me``)."""
_RESERVED = "/*!~"  # a nickname starting with one of these could pass for the above


class ChatHandler(CommandHandler):
    """One member of a :class:`ChatRoom`: lines are relayed, ``/commands`` are answered."""

    errors: ClassVar[str] = "replace"
    max_line_length: ClassVar[int] = 4096
    max_nick_length: ClassVar[int] = 24
    command_prefix: ClassVar[str] = "/"

    def __init__(self, room: ChatRoom) -> None:
        self.room = room
        self.nick = ""

    def setup(self) -> None:
        self.room.join(self)

    def finish(self) -> None:
        self.room.leave(self, "has left")

    def greeting(self) -> str:
        """Welcome the new member and tell it its guest nickname."""
        return f"{NOTICE}welcome to {self.room.name}, {self.nick}; {self.room.usage}"

    def handle_line(self, line: str) -> Reply:
        """Relay a message to the others, or run a ``/command`` and return its reply."""
        # Escaping is the room's job when it shows text (say, act, replies): a nickname
        # is checked raw, so an ESC in it is refused rather than shown as "\\x1b".
        text = line.strip()
        return super().handle_line(text) if text else None

    def handle_text(self, line: str) -> None:
        """A line that is not a command: say it to the room."""
        self.room.say(self, line)

    def unknown_verb(self, verb: str, args: str) -> str:
        """Name the unknown command as typed, and list the real ones."""
        return f"{ERROR}unknown command /{printable(verb)}; {self.room.usage}"

    def do_NICK(self, args: str) -> str:
        """/nick NAME: change your nickname."""
        old = self.nick
        problem = self.room.rename(self, args.strip())
        if problem:
            return f"{ERROR}{problem}"
        self.room.broadcast(f"{NOTICE}{old} is now known as {self.nick}", exclude=self)
        return f"{NOTICE}you are now {self.nick}"

    def do_WHO(self, args: str) -> str:
        """/who: list who is here."""
        names = self.room.nicknames()
        return f"{NOTICE}{len(names)} here: {', '.join(names)}"

    def do_QUIT(self, args: str) -> str:
        """/quit: leave the room."""
        self.close()
        return f"{NOTICE}bye"

    def do_HELP(self, args: str) -> str:
        """/help: list the commands."""
        return f"{NOTICE}{self.room.usage}"


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
            raise ConfigurationError(f"max_backlog must be >= 1, not {max_backlog!r}")
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
        return "commands: " + ", ".join(f"/{v.lower()}" for v in self.handler_class.verbs())

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
        self.broadcast(f"{NOTICE}{nick} has joined", exclude=member)

    def leave(self, member: ChatHandler, why: str) -> None:
        """Remove ``member`` (if still present) and tell the others ``why``."""
        if self.members.get(member.nick.casefold()) is member:
            del self.members[member.nick.casefold()]
            self.broadcast(f"{NOTICE}{member.nick} {why}")

    def say(self, member: ChatHandler, text: str) -> None:
        """Relay what ``member`` said to the others: ``nick: text``."""
        self.broadcast(f"{member.nick}: {printable(text)}", exclude=member)

    def act(self, member: ChatHandler, action: str) -> None:
        """Tell everyone what ``member`` does (``/me``): ``~ nick action``."""
        self.broadcast(f"{ACTION}{member.nick} {printable(action)}")

    def rename(self, member: ChatHandler, nick: str) -> str | None:
        """Change ``member``'s nickname; return what is wrong with ``nick``, or ``None``."""
        nick = normalize_nickname(nick)
        others = (m.nick for m in self.members.values() if m is not member)
        problem = nickname_problem(
            nick, others, max_length=member.max_nick_length, reserved=_RESERVED
        )
        if problem:
            return problem
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
        self._outbox.append((f"{NOTICE}{member.nick} was disconnected (not reading)", None))


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
            line = printable(frame.decode("utf-8", "replace").removesuffix("\r"))  # U+2028 too
            print(line, file=out, flush=True)

    async def outgoing() -> None:
        async for line in stdin_lines(stdin):
            # Any input bytes go as they came: the room decodes with "replace".
            await client.send_frame(line_bytes(line))
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
