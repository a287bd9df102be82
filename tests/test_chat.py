"""The chat room and its demo: relaying, commands, slow consumers, bad input, the client."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from asyncnet import tcp_server
from asyncnet.chat import ChatHandler, ChatRoom, chat_session, printable
from asyncnet.demos.chat import Chat
from asyncnet.servers import StreamServer

from .helpers import ROOT, WatchedText, read_all, read_listening_line, spawn
from .ports import refused_port


class Member:
    """A raw line client of the chat (asyncio streams, bytes on the wire as they are)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def join(cls, server: StreamServer) -> Member:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*server.address), 5)
        member = cls(reader, writer)
        assert (await member.line()).startswith("* welcome to the chat, guest")
        return member

    async def say(self, text: str | bytes) -> None:
        self.writer.write((text.encode() if isinstance(text, str) else text) + b"\n")
        await self.writer.drain()

    async def line(self) -> str:
        raw = await asyncio.wait_for(self.reader.readline(), 5)
        return raw.decode("utf-8").removesuffix("\n")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionResetError):  # an aborted member
            await self.writer.wait_closed()


@pytest.fixture
async def chat() -> AsyncIterator[tuple[ChatRoom, StreamServer]]:
    room = ChatRoom(handler_class=Chat)
    async with tcp_server(room.handler) as server:
        yield room, server


async def test_lines_are_relayed_to_the_others_with_the_nickname(
    chat: tuple[ChatRoom, StreamServer],
) -> None:
    room, server = chat
    alice = await Member.join(server)
    bob = await Member.join(server)
    assert await alice.line() == "* guest2 has joined"
    await alice.say("/nick alice")
    assert await alice.line() == "* you are now alice"
    assert await bob.line() == "* guest1 is now known as alice"
    await bob.say("/nick bob")
    assert await bob.line() == "* you are now bob"
    assert await alice.line() == "* guest2 is now known as bob"
    await alice.say("hello, bob")
    assert await bob.line() == "alice: hello, bob"
    await bob.say("/who")
    assert await bob.line() == "* 2 here: alice, bob"
    await bob.say("/me waves")
    assert await alice.line() == "~ bob waves"
    assert await bob.line() == "~ bob waves"
    await alice.say("/quit")
    assert await alice.line() == "* bye"
    assert await read_all(alice.reader) == b""
    assert await bob.line() == "* alice has left"
    await bob.say("/who")
    assert await bob.line() == "* 1 here: bob"
    assert room.nicknames() == ["bob"]
    await alice.close()
    await bob.close()
    await server.events.wait_for(lambda: not room.members, timeout=5)


async def test_nickname_rules_and_unknown_commands(chat: tuple[ChatRoom, StreamServer]) -> None:
    _, server = chat
    alice = await Member.join(server)
    bob = await Member.join(server)
    assert await alice.line() == "* guest2 has joined"
    await alice.say("/nick Alice")
    assert await alice.line() == "* you are now Alice"
    assert await bob.line() == "* guest1 is now known as Alice"
    for bad, reply in [
        ("/nick alice", "! alice is taken"),  # case-insensitive
        ("/nick", "! a nickname is 1 to 24 visible characters without spaces"),
        ("/nick two words", "! a nickname is 1 to 24 visible characters without spaces"),
        ("/nick " + "n" * 25, "! a nickname is 1 to 24 visible characters without spaces"),
        ("/nick *star", "! a nickname cannot start with /, *, ! or ~"),
        ("/frobnicate", "! unknown command /frobnicate; commands: /help, /me, /nick, /quit, /who"),
        ("/__init__", "! unknown command /__init__; commands: /help, /me, /nick, /quit, /who"),
    ]:
        await bob.say(bad)
        assert await bob.line() == reply
    await bob.say("/nick ALICE2")
    assert await bob.line() == "* you are now ALICE2"
    await alice.close()
    await bob.close()


async def test_invalid_utf8_is_replaced_and_control_characters_escaped(
    chat: tuple[ChatRoom, StreamServer],
) -> None:
    """Bad input in a line protocol: the chat chooses replacement (documented in asyncnet.chat)."""
    _, server = chat
    alice = await Member.join(server)
    bob = await Member.join(server)
    await bob.say(b"caf\xe9 \xff\xfe")  # Latin-1, then bytes that are never UTF-8
    assert await alice.line() == "* guest2 has joined"
    assert await alice.line() == "guest2: caf\ufffd \ufffd\ufffd"
    await bob.say(b"\x1b[2J\x00bell\x07 \xe2\x80\xae spoof")  # ANSI clear, NUL, BEL, RLO
    assert await alice.line() == "guest2: \\x1b[2J\\x00bell\\x07 \\u202e spoof"
    await bob.say("still connected")
    assert await alice.line() == "guest2: still connected"
    await alice.close()
    await bob.close()


def test_printable() -> None:
    assert printable("plain text, accents é, emoji 🐍") == "plain text, accents é, emoji 🐍"
    assert printable("tab\there\x7f\x9b") == "tab\\there\\x7f\\x9b"


async def test_over_long_line_closes_only_that_member(chat: tuple[ChatRoom, StreamServer]) -> None:
    room, server = chat
    alice = await Member.join(server)
    bob = await Member.join(server)
    await bob.say("x" * 5000)
    assert (await bob.line()).startswith("error: line too long")
    assert await read_all(bob.reader) == b""
    await bob.close()  # the server lingers for our close, so the error reply is not lost
    assert await alice.line() == "* guest2 has joined"
    assert await alice.line() == "* guest2 has left"
    carol = await Member.join(server)
    await carol.say("hi")
    assert await alice.line() == "* guest3 has joined"
    assert await alice.line() == "guest3: hi"
    assert server.stats.protocol_errors == 1
    assert room.nicknames() == ["guest1", "guest3"]
    await alice.close()
    await carol.close()


async def test_guest_numbers_skip_taken_nicknames(chat: tuple[ChatRoom, StreamServer]) -> None:
    _, server = chat
    first = await Member.join(server)
    await first.say("/nick guest2")
    assert await first.line() == "* you are now guest2"
    second = await Member.join(server)
    await second.say("/who")
    assert await second.line() == "* 2 here: guest2, guest3"
    await first.close()
    await second.close()


class SmallSendBuffer(ChatHandler):
    """Caps the kernel's send buffer, so what piles up is the room's to bound.

    Otherwise how much the kernel absorbs for a peer that never reads depends on
    its autotuning (megabytes on some systems), and so would the test's length.
    """

    def setup(self) -> None:
        sock = self.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
        super().setup()


@pytest.mark.slow
async def test_hundred_members_one_never_reads(caplog: pytest.LogCaptureFixture) -> None:
    """S2 for broadcasts: a member that never reads is dropped; the 99 others get everything.

    The silent member is a raw socket with a 4 KiB receive buffer that never calls
    recv().  Once it is more than max_backlog bytes behind the room disconnects it
    (logged, with the reason); meanwhile and afterwards every other member receives
    every message, in order.
    """
    room = ChatRoom(max_backlog=16 * 1024, handler_class=SmallSendBuffer)
    loop = asyncio.get_running_loop()
    async with tcp_server(room.handler) as server:
        silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        silent.setblocking(False)
        await asyncio.wait_for(loop.sock_connect(silent, server.address), 5)
        sender = await Member.join(server)
        await sender.say("/nick sender")
        listeners = [await Member.join(server) for _ in range(98)]
        await server.events.wait_opened(100, timeout=5)  # each member joins in setup()
        assert len(room.members) == 100

        payload = "x" * 1000
        arrived: dict[int, int] = {}
        all_arrived: dict[int, asyncio.Event] = {}

        notices: list[str] = []

        async def listen(member: Member) -> list[int]:
            got = []
            while (line := await member.line()) != "sender: END":
                if line.startswith("* guest1 "):
                    notices.append(line)
                elif line.startswith("sender: "):
                    number = int(line.split()[1])
                    got.append(number)
                    arrived[number] = arrived.get(number, 0) + 1
                    if arrived[number] == len(listeners):
                        all_arrived[number].set()
            return got

        tasks = [asyncio.create_task(listen(m)) for m in listeners]
        sent: list[int] = []
        extra = 0
        for number in range(5000):  # bounded: the silent member fills its buffers long before
            all_arrived[number] = asyncio.Event()
            await sender.say(f"{number} {payload}")
            sent.append(number)
            if number % 20 == 19:  # pace in batches, as real chatters do
                await asyncio.wait_for(all_arrived[number].wait(), 10)
                if room.slow_consumers:
                    extra += 1
                    if extra == 3:  # some traffic after the disconnection too
                        break
        assert room.slow_consumers == 1
        await sender.say("END")
        results = await asyncio.wait_for(asyncio.gather(*tasks), 20)
        assert all(got == sent for got in results)
        assert notices == ["* guest1 was disconnected (not reading)"] * len(listeners)
        assert len(room.members) == 99
        assert server.connections == 99
        assert "slow consumer 'guest1'" in caplog.text
        assert "slow consumer" in caplog.text
        silent.close()
        for member in [sender, *listeners]:
            await member.close()


async def test_chat_session_prints_incoming_lines_while_waiting_for_input(
    chat: tuple[ChatRoom, StreamServer],
) -> None:
    """The interactive client: lines from the room print while stdin has nothing new."""
    room, server = chat
    other = await Member.join(server)
    read_fd, write_fd = os.pipe()
    out = WatchedText()
    with open(read_fd, encoding="utf-8") as stdin, open(write_fd, "w", encoding="utf-8") as typing:
        session = asyncio.create_task(
            chat_session(*server.address, timeout=5, stdin=stdin, stdout=out)
        )
        assert await other.line() == "* guest2 has joined"
        await other.say("are you there?")
        await out.wait_for("guest1: are you there?")
        typing.write("yes, typing\n/quit\n")
        typing.flush()
        assert await asyncio.wait_for(session, 5) == 0
    assert await other.line() == "guest2: yes, typing"
    assert await other.line() == "* guest2 has left"
    assert out.getvalue().splitlines() == [
        "* welcome to the chat, guest2; commands: /help, /me, /nick, /quit, /who",
        "guest1: are you there?",
        "* bye",
    ]
    await other.close()
    await server.events.wait_for(lambda: not room.members, timeout=5)


async def test_chat_session_end_of_input_quits_and_refused_connect_is_status_1(
    chat: tuple[ChatRoom, StreamServer], capsys: pytest.CaptureFixture[str]
) -> None:
    _, server = chat
    out = io.StringIO()
    status = await chat_session(*server.address, timeout=5, stdin=io.StringIO("hi\n"), stdout=out)
    assert status == 0
    assert out.getvalue().splitlines()[-1] == "* bye"
    with refused_port() as port:
        assert await chat_session("127.0.0.1", port, timeout=5, stdin=io.StringIO()) == 1
    assert f"error: connect with 127.0.0.1:{port} failed" in capsys.readouterr().err


def test_room_refuses_a_nonsense_backlog() -> None:
    with pytest.raises(ValueError, match="max_backlog"):
        ChatRoom(max_backlog=0)
    assert ChatRoom().handler().__class__ is ChatHandler


# -- the demo as a process ----------------------------------------------------------------


@pytest.mark.slow
def test_chat_demo_serves_then_exits_zero_on_sigint() -> None:
    with spawn(["-m", "asyncnet.demos.chat", "--port", "0"]) as proc:
        port = int(read_listening_line(proc, r"chat: listening on tcp://127\.0\.0\.1:(\d+)")[1])
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as one,
            socket.create_connection(("127.0.0.1", port), timeout=5) as two,
        ):
            a, b = one.makefile("rwb"), two.makefile("rwb")
            assert a.readline().startswith(b"* welcome")
            assert b.readline().startswith(b"* welcome")
            assert a.readline() == b"* guest2 has joined\n"
            b.write(b"hello from a blocking client\n")
            b.flush()
            assert a.readline() == b"guest2: hello from a blocking client\n"
            client = subprocess.run(
                [sys.executable, "-m", "asyncnet.demos.chat", "--client", "--port", str(port)],
                input="/nick cli\nfrom the client\n",
                capture_output=True,
                text=True,
                timeout=20,
                cwd=ROOT,
            )
            assert client.returncode == 0, client.stderr
            assert client.stdout.splitlines()[-2:] == ["* you are now cli", "* bye"]
            assert a.readline() == b"* guest3 has joined\n"
            assert a.readline() == b"* guest3 is now known as cli\n"
            assert a.readline() == b"cli: from the client\n"
            assert a.readline() == b"* cli has left\n"
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
            assert a.readline() == b""  # the server closed idle members on the way out


async def test_members_cannot_impersonate_the_room_or_each_other(
    chat: tuple[ChatRoom, StreamServer],
) -> None:
    """No forged notices, no look-alike or invisible nicknames, and
    line/paragraph separators escaped in relay (and by the client's printable())."""
    _, server = chat
    alice = await Member.join(server)
    bob = await Member.join(server)
    assert await alice.line() == "* guest2 has joined"
    await alice.say("/nick alice")
    assert await alice.line() == "* you are now alice"
    assert await bob.line() == "* guest1 is now known as alice"
    await bob.say("/me has left")  # was "* guest2 has left", the room's own notice
    assert await alice.line() == "~ guest2 has left"
    assert await bob.line() == "~ guest2 has left"
    for nick, problem in [
        ("\u0430lice", "\u0430lice looks too much like alice"),  # Cyrillic a
        ("AL1CE", "AL1CE looks too much like alice"),
        ("\u3164", "a nickname is 1 to 24 visible characters without spaces"),  # filler
        ("bo\u200bb", "a nickname is 1 to 24 visible characters without spaces"),  # ZWSP
        ("evil\x1b[2J", "a nickname is 1 to 24 visible characters without spaces"),
        ("~alice", "a nickname cannot start with /, *, ! or ~"),
    ]:
        await bob.say("/nick " + nick)
        assert await bob.line() == f"! {problem}"
    await bob.say("/nick \uff42\uff4f\uff42")  # full-width: NFKC makes it plain "bob"
    assert await bob.line() == "* you are now bob"
    assert await alice.line() == "* guest2 is now known as bob"
    await bob.say("hi\u2028* alice has left\u2029ok")
    assert await alice.line() == "bob: hi\\u2028* alice has left\\u2029ok"
    assert printable("a\u2028b\u0085c") == "a\\u2028b\\x85c"
    await alice.close()
    await bob.close()
