"""The tutorial's interactive urllib session, as a command: fetch a URL, show what came back.

    python -m asyncnet.demos.fetch http://127.0.0.1:8000/
    python -m asyncnet.demos.fetch http://127.0.0.1:8000/form -d subnum=42 -d reviewer=me
    python -m asyncnet.demos.fetch URL -H "Accept: text/plain" --proxy http://127.0.0.1:8899
    python -m asyncnet.demos.fetch URL -o page.html          # save it, with a progress bar

Prints the status line, the headers and the start of the body (control characters
escaped).  ``-d`` makes it a POST (urllib2's add_data).  TLS certificates are
verified unless you pass --insecure.
"""

from __future__ import annotations

import argparse
import sys

from ..runner import run
from ..web import Client, Request
from ..web.debug import escape_log
from . import _cli as cli


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

            def progress(done: int, total: int | None) -> None:
                print(f"\r{bar(done, total)}", end="", file=sys.stderr, flush=True)

            size = await client.download(request, args.output, progress=progress)
            print(f"\nfetch: saved {size} bytes to {args.output}", file=sys.stderr)
            return 0
        response = await client.fetch(request)
    print(f"{response.status} {response.reason}  {response.url}")
    for name, value in response.headers.items():
        print(f"{name}: {escape_log(value)}")
    print()
    text = response.text()
    shown = "\n".join(escape_log(line) for line in text[: args.bytes].splitlines())
    print(shown + (f"\n... ({len(response.body)} bytes in all)" if len(text) > args.bytes else ""))
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
        "--bytes", type=cli.non_negative_int, default=600, help="how much body to show (600)"
    )
    parser.add_argument(
        "--timeout", type=cli.positive_float, default=30.0, help="seconds for the request"
    )
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    return cli.main(parser, lambda args: run(fetch_and_show(args)), argv, address_flag="the URL")


if __name__ == "__main__":
    raise SystemExit(main())
