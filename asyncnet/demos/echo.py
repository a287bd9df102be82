"""The tutorial's connection-oriented server and client (bind/listen/accept, connect).

    python -m asyncnet.demos.echo                        # serve on 127.0.0.1:9997
    python -m asyncnet.demos.echo --port 0               # any free port; printed at start
    python -m asyncnet.demos.echo --client "Hello world"  # one message, one reply

One message, one reply, then the server closes the connection.  The client
reports its own address, the ephemeral port the OS picked (the tutorial's
getsockname() slide).  Input must be UTF-8: anything else gets an error reply.
"""

from __future__ import annotations

import argparse
import sys

from .. import AsyncNetError, LineClient, LineHandler, run, tcp_server
from ..errors import format_peer
from . import _cli as cli

PORT = 9997


class Echo(LineHandler):
    """Send the message back, then close: one connection, one exchange."""

    def handle_line(self, line: str) -> str:
        self.close()
        return line


async def echo_client(host: str, port: int, message: str, timeout: float) -> int:
    """Connect, send one message, print the reply and both ends' addresses."""
    try:
        async with await LineClient.connect(host, port, timeout=timeout) as client:
            print(f"connected from {format_peer(client.local_address)}", flush=True)
            print(f"sent {message!r} to {format_peer(client.peer)}", flush=True)
            print(f"received {await client.request(message)!r}", flush=True)
    except AsyncNetError as exc:
        print(f"error: {cli.explain(exc, host=host) or exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Serve echo, or with --client send one message to it."""
    parser = cli.parser("python -m asyncnet.demos.echo", __doc__)
    cli.add_server_arguments(parser, port=PORT)
    parser.add_argument(
        "--client",
        metavar="MESSAGE",
        type=cli.utf8_text,
        help="send MESSAGE (UTF-8 text) and print the reply",
    )
    parser.add_argument(
        "--timeout", type=cli.positive_float, default=5.0, help="client: seconds per step"
    )
    return cli.main(parser, serve, argv)


def serve(args: argparse.Namespace) -> int:
    """The body of main(): the server, or the one-shot client."""
    if args.client is not None:
        return run(echo_client(args.host, args.port, args.client, args.timeout))
    server = tcp_server(cli.log_connections(Echo), **cli.server_options(args))
    return cli.serve(server, name="echo")


if __name__ == "__main__":
    raise SystemExit(main())
