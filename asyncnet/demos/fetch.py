"""The tutorial's interactive urllib session, as a command: fetch a URL, show what came back.

    python -m asyncnet.demos.fetch http://127.0.0.1:8000/
    python -m asyncnet.demos.fetch http://127.0.0.1:8000/form -d subnum=42 -d reviewer=me
    python -m asyncnet.demos.fetch URL -H "Accept: text/plain" --proxy http://127.0.0.1:8899
    python -m asyncnet.demos.fetch URL -o page.html          # save it, with a progress bar
    python -m asyncnet.demos.fetch URL -o big.iso --max-size 8G

Prints the status line, the headers and the start of the body (control characters
escaped).  ``-d`` makes it a POST (urllib2's add_data).  TLS certificates are
verified unless you pass --insecure.  ``-o`` saves at most --max-size bytes (1G)
and stops a compressed body that expands more than --max-ratio (100) times; a
download that fails leaves nothing behind.
"""

from __future__ import annotations

import argparse
import re
import sys

from .. import run
from ..errors import ConfigurationError
from ..text import printable
from ..web import MAX_RATIO, BodyTooLarge, Client, CompressionBomb, Request
from . import _cli as cli

MAX_SIZE = 1024**3
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def byte_size(text: str) -> int:
    """An argparse ``type=``: bytes, or with a K, M, G or T suffix (powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size: give bytes or use a K, M or G suffix (500M, 2G)"
        )
    return int(match[1]) * _UNITS[match[2].upper()]


def ratio(text: str) -> float:
    """An argparse ``type=``: a finite number >= 0 (0 = no limit)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or more, not {text}")
    return value


def bar(done: int, total: int | None, width: int = 30) -> str:
    """``[#####.....] 1234/5678 bytes``: a progress bar line (no total: just the count)."""
    if not total:
        return f"{done} bytes"
    filled = min(width, width * done // total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} bytes"


async def fetch_and_show(args: argparse.Namespace) -> int:
    """urlopen(url), then print what the tutorial printed: headers and data."""
    request = Request(args.url, method=args.method)
    for header in args.header:
        name, _, value = header.partition(":")
        request.add_header(name.strip(), value.strip())
    if args.data:
        request.add_data(dict(item.partition("=")[::2] for item in args.data))
    if args.proxy:
        scheme, _, host = args.proxy.partition("://")
        request.set_proxy(host.rstrip("/"), scheme)
    async with Client(timeout=args.timeout, verify=not args.insecure) as client:
        if args.output:
            return await save(client, request, args)
        response = await client.fetch(request)
    print(f"{response.status} {printable(response.reason)}  {printable(response.url)}")
    for name, value in response.headers.items():
        print(f"{printable(name)}: {printable(value)}")
    print()
    text = response.text()
    shown = "\n".join(printable(line.expandtabs()) for line in text[: args.bytes].splitlines())
    print(shown + (f"\n... ({len(response.body)} bytes in all)" if len(text) > args.bytes else ""))
    return 0


async def save(client: Client, request: Request, args: argparse.Namespace) -> int:
    """``-o FILE``: stream the body to FILE, bounded by --max-size and --max-ratio."""
    # A bar redrawn with \r is for a terminal; in a log it is noise before the one line.
    tty = sys.stderr.isatty()

    def progress(done: int, total: int | None) -> None:
        print(f"\r{bar(done, total)}", end="", file=sys.stderr, flush=True)

    try:
        size = await client.download(
            request,
            args.output,
            progress=progress if tty else None,
            max_body=args.max_size or None,
            max_ratio=args.max_ratio or None,
        )
    except BodyTooLarge as exc:
        raise ConfigurationError(
            f"{exc}; nothing saved: pass a larger --max-size (0 = no limit)"
        ) from exc
    except CompressionBomb as exc:
        raise ConfigurationError(
            f"{exc}; nothing saved: pass a larger --max-ratio (0 = no limit)"
        ) from exc
    finally:
        if tty:
            print(file=sys.stderr)  # the error or the summary on a line of its own
    print(f"fetch: saved {size} bytes to {args.output}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Fetch one URL."""
    parser = cli.parser("python -m asyncnet.demos.fetch", __doc__)
    parser.add_argument("url", help="http:// or https:// URL")
    parser.add_argument("-d", "--data", action="append", metavar="NAME=VALUE", default=[])
    parser.add_argument("-H", "--header", action="append", metavar="NAME: VALUE", default=[])
    parser.add_argument("-X", "--method", help="HTTP method (default GET, POST with -d)")
    parser.add_argument("--proxy", metavar="URL", help="forward proxy, e.g. http://127.0.0.1:8899")
    parser.add_argument("-o", "--output", metavar="FILE", help="save the body to FILE")
    parser.add_argument(
        "--max-size",
        type=byte_size,
        default=MAX_SIZE,
        metavar="SIZE",
        help="with -o: save at most this much, e.g. 500M (default 1G; 0 = no limit)",
    )
    parser.add_argument(
        "--max-ratio",
        type=ratio,
        default=MAX_RATIO,
        metavar="N",
        help=f"with -o: stop a compressed body that expands more than N times (default"
        f" {MAX_RATIO:g}; 0 = no limit)",
    )
    parser.add_argument(
        "--bytes", type=cli.non_negative_int, default=600, help="how much body to show (600)"
    )
    parser.add_argument(
        "--timeout", type=cli.positive_float, default=30.0, help="seconds for the request"
    )
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    return cli.main(parser, lambda args: run(fetch_and_show(args)), argv, address_flag="the URL")


if __name__ == "__main__":
    raise SystemExit(main())
