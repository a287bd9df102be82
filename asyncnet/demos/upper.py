"""The tutorial's upper-case service (SockServTCP.py / SockServUDP.py), on asyncio.

    python -m asyncnet.demos.upper                   # serve TCP and UDP on 127.0.0.1:9999
    python -m asyncnet.demos.upper --port 0          # any free ports; printed at start
    python -m asyncnet.demos.upper --style stream    # the same, as readline()/write()/drain()
    python -m asyncnet.demos.upper --workers 4       # 4 processes share the ports
    python -m asyncnet.demos.upper --client          # type lines, get them back in capitals
    python -m asyncnet.demos.upper --client --udp    # the same over UDP (timeout + retries)
    python -m asyncnet.demos.upper --proxy-protocol --health-port 9998   # behind HAProxy

Over TCP a blank line (or end of input) ends the session, as in the tutorial; over
UDP each datagram is answered upper-cased.  Ctrl-C stops the server gracefully.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import (
    DatagramHandler,
    LineHandler,
    StreamHandler,
    run,
    run_workers,
    tcp_server,
    udp_server,
)
from ..clients import datagram_session, line_session
from ..servers import HealthServer, sockets_from_systemd
from . import _cli as cli

PORT = 9999


class Upper(LineHandler):
    """One line in, the same line in capitals out; a blank line ends the session."""

    def handle_line(self, line: str) -> str | None:
        if not line:
            self.close()
            return None
        return line.upper()


class UpperStream(StreamHandler):
    """The same service as the slide writes it: a coroutine that reads and writes."""

    async def handle(self) -> None:
        while line := await self.readline():
            line = line.rstrip(b"\r\n")
            if not line:  # the blank line ends the session, as does end of input
                return
            self.writer.write(line.upper() + b"\n")
            await self.writer.drain()


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
        "--style",
        choices=["line", "stream"],
        default="line",
        help="server: the TCP handler, a LineHandler (default) or a StreamHandler",
    )
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
    parser.add_argument(
        "--proxy-protocol",
        action="store_true",
        help="server: TCP connections start with a PROXY v1/v2 header from a balancer on loopback",
    )
    parser.add_argument(
        "--health-port",
        type=cli.port_number,
        default=None,
        help="server: answer GET /healthz on this port (503 while draining; 0 = any free port)",
    )
    parser.add_argument(
        "--drain-delay",
        type=cli.non_negative_float,
        default=0.0,
        help="server: on SIGTERM, report unhealthy this many seconds before closing",
    )
    parser.add_argument(
        "--systemd",
        action="store_true",
        help="server: serve TCP on the socket systemd passes (LISTEN_FDS) instead of binding",
    )
    return cli.main(parser, serve, argv)


def serve(args: argparse.Namespace) -> int:
    """The body of main(): the server, or the client."""
    if args.client:
        session = datagram_session if args.udp else line_session
        return run(session(args.host, args.port, timeout=args.timeout, retries=args.retries))
    tcp_options = cli.server_options(args)
    if args.systemd:
        sockets = sockets_from_systemd()
        if not sockets:
            print(
                "upper: no socket from systemd (LISTEN_FDS unset); run without --systemd",
                file=sys.stderr,
            )
            return 1
        tcp_options["sock"] = sockets[0]
    upper = cli.log_connections(UpperStream if args.style == "stream" else Upper)
    servers: list[Any] = [
        tcp_server(upper, proxy_protocol=args.proxy_protocol, **tcp_options),
        udp_server(UpperDatagram, **cli.server_options(args)),
    ]
    if args.health_port is not None:
        # last: run_servers stops in reverse order, so it turns unhealthy first
        health_options = cli.server_options(args) | {"port": args.health_port}
        servers.append(HealthServer(*servers, drain_delay=args.drain_delay, **health_options))
    if args.workers == 1:
        return cli.serve(*servers, name="upper")
    return run_workers(*servers, workers=args.workers, ready=cli.announce("upper"))


if __name__ == "__main__":
    raise SystemExit(main())
