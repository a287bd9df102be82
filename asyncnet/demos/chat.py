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

from .. import run, tcp_server
from ..chat import ChatHandler, ChatRoom, chat_session
from . import _cli as cli

PORT = 9998


class Chat(ChatHandler):
    """A chat member; the room relays its lines and answers /nick, /who, /quit."""

    def command_me(self, args: str) -> None:
        """/me ACTION: tell the room what you are doing."""
        self.room.broadcast(f"* {self.nick} {args}")


def main(argv: list[str] | None = None) -> int:
    """Serve the chat, or with --client join one."""
    parser = cli.parser("python -m asyncnet.demos.chat", __doc__)
    cli.add_server_arguments(parser, port=PORT)
    parser.add_argument("--client", action="store_true", help="be the interactive client")
    parser.add_argument(
        "--timeout", type=cli.positive_float, default=10.0, help="client: connect/send limit"
    )
    parser.add_argument(
        "--max-backlog", type=cli.positive_int, default=64 * 1024, help="server: bytes"
    )
    return cli.main(parser, serve, argv)


def serve(args: argparse.Namespace) -> int:
    """The body of main(): the chat server, or a member's client."""
    if args.client:
        return run(chat_session(args.host, args.port, timeout=args.timeout))
    room = ChatRoom(handler_class=Chat, max_backlog=args.max_backlog)
    server = tcp_server(cli.log_connections(room.handler), name="chat", **cli.server_options(args))
    return cli.serve(server, name="chat")


if __name__ == "__main__":
    raise SystemExit(main())
