"""The tutorial's upper-case service (SockServTCP.py / SockServUDP.py), on asyncio.

    python -m asyncnet.demos.upper                   # serve TCP and UDP on 127.0.0.1:9999
    python -m asyncnet.demos.upper --port 0          # any free ports; printed at start
    python -m asyncnet.demos.upper --workers 4       # 4 processes share the ports
    python -m asyncnet.demos.upper --client          # type lines, get them back in capitals
    python -m asyncnet.demos.upper --client --udp    # the same over UDP (timeout + retries)

Over TCP a blank line (or end of input) ends the session, as in the tutorial; over
UDP each datagram is answered upper-cased.  Ctrl-C stops the server gracefully.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import DatagramHandler, LineHandler, run, tcp_server, udp_server
from ..clients.interactive import datagram_session, line_session
from ..workers import run_workers
from . import _cli as cli

PORT = 9999


class Upper(LineHandler):
    """One line in, the same line in capitals out; a blank line ends the session."""

    def handle_line(self, line: str) -> str | None:
        if not line:
            self.close()
            return None
        return line.upper()


class UpperDatagram(DatagramHandler):
    """Each datagram comes back in capitals."""

    def handle(self, data: bytes, addr: Any) -> bytes:
        return data.upper()


def main(argv: list[str] | None = None) -> int:
    """Serve the upper service, or with --client talk to it."""
    parser = cli.parser("python -m asyncnet.demos.upper", __doc__)
    cli.add_server_arguments(parser, port=PORT)
    parser.add_argument("--client", action="store_true", help="be the interactive client")
    parser.add_argument("--udp", action="store_true", help="client: use UDP instead of TCP")
    parser.add_argument(
        "--timeout", type=cli.positive_float, default=2.0, help="client: seconds per reply"
    )
    parser.add_argument(
        "--retries", type=cli.non_negative_int, default=2, help="UDP client: extra attempts"
    )
    parser.add_argument(
        "--workers",
        type=cli.positive_int,
        default=1,
        help="server: processes sharing the ports (SO_REUSEPORT)",
    )
    return cli.main(parser, serve, argv)


def serve(args: argparse.Namespace) -> int:
    """The body of main(): the server, or the client."""
    if args.client:
        session = datagram_session if args.udp else line_session
        return run(session(args.host, args.port, timeout=args.timeout, retries=args.retries))
    servers = (
        tcp_server(cli.log_connections(Upper), **cli.server_options(args)),
        udp_server(UpperDatagram, **cli.server_options(args)),
    )
    if args.workers == 1:
        return cli.serve(*servers, name="upper")
    return run_workers(*servers, workers=args.workers, ready=cli.announce("upper"))


if __name__ == "__main__":
    raise SystemExit(main())
