"""Command-line plumbing shared by the demos, so each demo reads like its slide."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import format_peer
from ..runner import configure_logging
from ..servers import DatagramServer
from ..servers._base import ServerBase

__all__ = ["add_server_arguments", "announce", "describe", "parse", "server_options"]


def add_server_arguments(parser: argparse.ArgumentParser, *, port: int) -> None:
    """--host, --port, --all-interfaces and -v, with loopback defaults."""
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to serve on or connect to (default 127.0.0.1; ::1 for IPv6)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=port,
        help=f"port (default {port}; 0 = any free port, printed at start)",
    )
    parser.add_argument(
        "--all-interfaces",
        action="store_true",
        help="listen on every interface instead of --host (explicit opt-in)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log connections (-v) and debug details (-vv) to stderr",
    )


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse arguments and set up logging from -v."""
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    return args


def server_options(args: argparse.Namespace) -> dict[str, Any]:
    """Server keyword arguments from --host/--port/--all-interfaces."""
    if args.all_interfaces:
        return {"host": None, "all_interfaces": True, "port": args.port}
    return {"host": args.host, "port": args.port}


def describe(server: ServerBase) -> str:
    """``tcp://127.0.0.1:9999`` style text for a running server."""
    scheme = "udp" if isinstance(server, DatagramServer) else "tcp"
    return ", ".join(f"{scheme}://{format_peer(a)}" for a in server.addresses)


def announce(name: str) -> Callable[[Sequence[ServerBase]], None]:
    """A ``ready`` callback printing the one line that says where the demo listens."""

    def ready(servers: Sequence[ServerBase]) -> None:
        where = " and ".join(describe(s) for s in servers)
        print(f"{name}: listening on {where} (Ctrl-C to stop)", flush=True)

    return ready
