"""Mr. Creosote (the tutorial's creosote.py / creosoteplus.py), on asyncio.

    python -m asyncnet.demos.creosote listen                   # the bucket, udp 127.0.0.1:5555
    python -m asyncnet.demos.creosote listen --web 8765        # ... and a live page on :8765
    python -m asyncnet.demos.creosote listen --log bucket.log  # ... and a log file
    python -m asyncnet.demos.creosote spew "a message"         # in another terminal
    python -m asyncnet.demos.creosote spew --file big.txt      # long ones go in BUFSIZE chunks
    python -m asyncnet.demos.creosote spew --framed --file big.txt   # ... and are reassembled

The bucket prints each message the way the tutorial's backticks did, control
characters escaped, with the time and the sender.  Spewing never fails because
nobody listens: that is the point of UDP here.  ``--port 0`` picks a free port and
prints it.  Ctrl-C stops the bucket.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .. import creosote, run, run_servers
from ..creosote import Bucket, Message, format_line, spew
from ..errors import NetworkError, format_peer
from . import _cli as cli


def listen(args: argparse.Namespace, log: TextIO | None) -> int:
    """creosoteplus's bucket: print (and log) every message until Ctrl-C."""

    def show(message: Message) -> None:
        print(format_line(message), flush=True)
        if log is not None:
            log.write(format_line(message, date=True) + "\n")
            log.flush()

    host = None if args.all_interfaces else args.host
    bucket = Bucket(host, args.port, all_interfaces=args.all_interfaces, callback=show)
    endpoints: list[Any] = [bucket]
    if args.web is not None:
        from ..creosote import WebView  # aiohttp: imported only when asked for

        endpoints.append(WebView(bucket, port=args.web))

    def ready(started: Sequence[Any]) -> None:
        where = " and ".join(
            e.url if hasattr(e, "url") else f"udp://{format_peer(e.address)}" for e in started
        )
        print(f"creosote: listening on {where} (Ctrl-C to stop)", flush=True)

    try:
        return run_servers(*endpoints, ready=ready)
    except NetworkError as exc:
        print(f"creosote: {exc}", file=sys.stderr)
        return 1


async def spew_message(args: argparse.Namespace, data: bytes) -> int:
    """The tutorial's spew(): send one message and return."""
    options = {"bufsize": args.bufsize, "framed": args.framed, "broadcast": args.broadcast}
    sent = await spew(data, args.host, args.port, **options)
    where = format_peer((args.host, args.port))
    print(f"creosote: spewed {len(data)} bytes in {sent} datagram(s) to udp://{where}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``listen`` for messages, or ``spew`` one."""
    parser = cli.parser("python -m asyncnet.demos.creosote", __doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{listen,spew}")
    bucket = commands.add_parser("listen", help="be the bucket: print whatever arrives")
    cli.add_server_arguments(bucket, port=creosote.PORT)
    bucket.add_argument("--log", metavar="FILE", help="also append every message to FILE")
    bucket.add_argument(
        "--web", metavar="PORT", type=cli.port_number, help="live web view on 127.0.0.1:PORT"
    )
    emitter = commands.add_parser("spew", help="send a message to the bucket")
    cli.add_verbose_argument(emitter)
    emitter.add_argument("--host", default="127.0.0.1", help="the bucket's address")
    emitter.add_argument(
        "--port", type=cli.port_number, default=creosote.PORT, help="the bucket's port"
    )
    emitter.add_argument("message", nargs="*", help="the message (words joined by spaces)")
    emitter.add_argument("--file", type=cli.existing_file, help="send this file's contents")
    emitter.add_argument(
        "--bufsize", type=cli.positive_int, default=creosote.BUFSIZE, help="datagram size"
    )
    emitter.add_argument("--framed", action="store_true", help="add the reassembly header")
    emitter.add_argument("--broadcast", action="store_true", help="allow a broadcast --host")

    def body(args: argparse.Namespace) -> int:
        # Messages are escaped already; this keeps an unusual terminal encoding from raising.
        if isinstance(sys.stdout, io.TextIOWrapper):
            sys.stdout.reconfigure(errors="backslashreplace")
        if args.command == "spew":
            if not args.file and not args.message:
                raise cli.UsageError("spew needs a message or --file")
            data = Path(args.file).read_bytes() if args.file else " ".join(args.message).encode()
            return run(spew_message(args, data))
        cli.server_options(args)  # refuses a wildcard --host in the flags' words
        with contextlib.ExitStack() as files:
            log = files.enter_context(open(args.log, "a", encoding="utf-8")) if args.log else None
            return listen(args, log)

    return cli.main(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
