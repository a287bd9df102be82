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

from .. import AsyncNetError, LineClient, LineHandler, run, run_servers, tcp_server
from ..errors import format_peer
from ._cli import add_server_arguments, announce, parse, server_options

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
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Serve echo, or with --client send one message to it."""
    parser = argparse.ArgumentParser(
        prog="python -m asyncnet.demos.echo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_server_arguments(parser, port=PORT)
    parser.add_argument("--client", metavar="MESSAGE", help="send MESSAGE and print the reply")
    parser.add_argument("--timeout", type=float, default=5.0, help="client: seconds per step")
    args = parse(parser, argv)
    if args.client is not None:
        return run(echo_client(args.host, args.port, args.client, args.timeout))
    return run_servers(tcp_server(Echo, **server_options(args)), ready=announce("echo"))


if __name__ == "__main__":
    raise SystemExit(main())
