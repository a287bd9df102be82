"""The asynchat chat server ("More General Asynchrony"), on asyncio.

    python -m asyncnet.demos.chat                # serve the chat on 127.0.0.1:9998
    python -m asyncnet.demos.chat --port 0       # any free port; printed at start
    python -m asyncnet.demos.chat --client       # join: incoming lines print while you type

Every line a member types goes to all the others, prefixed with its nickname.
Commands: /nick NAME, /who, /me ACTION, /quit.  A member that stops reading is
disconnected once it is --max-backlog bytes behind, so it never stalls the room.
"""

from __future__ import annotations

import argparse

from .. import run, run_servers, tcp_server
from ..chat import ChatHandler, ChatRoom, chat_session
from ._cli import add_server_arguments, announce, parse, server_options

PORT = 9998


class Chat(ChatHandler):
    """A chat member: what it says goes to everyone else; /nick, /who, /quit, /help."""

    def do_ME(self, args: str) -> None:
        """/me ACTION: tell the room what you are doing."""
        self.room.act(self, args)


def main(argv: list[str] | None = None) -> int:
    """Serve the chat, or with --client join one."""
    parser = argparse.ArgumentParser(
        prog="python -m asyncnet.demos.chat",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_server_arguments(parser, port=PORT)
    parser.add_argument("--client", action="store_true", help="be the interactive client")
    parser.add_argument("--timeout", type=float, default=10.0, help="client: connect/send limit")
    parser.add_argument("--max-backlog", type=int, default=64 * 1024, help="server: bytes")
    args = parse(parser, argv)
    if args.client:
        return run(chat_session(args.host, args.port, timeout=args.timeout))
    room = ChatRoom(handler_class=Chat, max_backlog=args.max_backlog)
    return run_servers(tcp_server(room.handler, **server_options(args)), ready=announce("chat"))


if __name__ == "__main__":
    raise SystemExit(main())
