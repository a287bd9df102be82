"""The tutorial's interactive urllib session, as a command: fetch a URL, show what came back.

    python -m asyncnet.demos.fetch http://127.0.0.1:8000/
    python -m asyncnet.demos.fetch http://127.0.0.1:8000/form -d subnum=42 -d reviewer=me
    python -m asyncnet.demos.fetch URL -H "Accept: text/plain" --proxy http://127.0.0.1:8899
    python -m asyncnet.demos.fetch URL --proxy socks5h://127.0.0.1:1080
    python -m asyncnet.demos.fetch https://host.internal/ --cafile my-ca.pem
    python -m asyncnet.demos.fetch URL -u alice --fail       # basic auth; exit 22 on 4xx/5xx
    python -m asyncnet.demos.fetch URL -o page.html          # save it, with a progress bar
    python -m asyncnet.demos.fetch URL -o big.iso --max-size 8G

Prints the status line, the headers and the start of the body (control characters
escaped).  ``-d`` makes it a POST (urllib2's add_data).  TLS certificates are
always verified: --cafile adds a private CA to the system's.  HTTP_PROXY,
HTTPS_PROXY, ALL_PROXY and NO_PROXY are honoured as curl does (--noproxy '*' to
ignore them).  ``-u USER`` takes the password from $ASYNCNET_HTTP_PASSWORD or asks.
``-o`` saves at most --max-size bytes (1G) and stops a compressed body that
expands more than --max-ratio (100) times; a download that fails leaves nothing
behind, and a download is never resumed.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from typing import TYPE_CHECKING

from .. import run
from ..errors import ConfigurationError
from ..text import printable
from . import _cli as cli

if TYPE_CHECKING:  # aiohttp is imported when a fetch runs, so that --help stays quick
    from ..web import Client, ProxyError, Request

PROG = "python -m asyncnet.demos.fetch"
MAX_SIZE = 1024**3
MAX_RATIO = 100.0
"""asyncnet.web.MAX_RATIO, repeated so that --help does not import aiohttp."""
PASSWORD_ENV = "ASYNCNET_HTTP_PASSWORD"
FAIL_STATUS = 22
"""curl -f's exit status for a 4xx/5xx answer."""
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


def credentials(user: str) -> tuple[str, str]:
    """``-u USER[:PASS]``: the password after the colon, else $ASYNCNET_HTTP_PASSWORD,
    else asked on the terminal."""
    name, colon, password = user.partition(":")
    if colon:
        return name, password
    password = os.environ.get(PASSWORD_ENV, "")
    if password:
        return name, password
    if not sys.stdin.isatty():
        raise ConfigurationError(
            f"-u {name}: no password: set ${PASSWORD_ENV} (no terminal to ask for it)"
        )
    return name, getpass.getpass(f"password for {name}: ")


def proxy_failure(exc: ProxyError) -> ConfigurationError:
    """A dead proxy in one line naming where it was set: --proxy or the variable."""
    if exc.source is None:
        advice = "check --proxy"
    else:
        advice = f"check {exc.source}, or pass --noproxy '*' to ignore the environment"
    if exc.errno is not None and exc.reason and "refused" in exc.reason.lower():
        advice = f"is the proxy running? {advice}"
    return ConfigurationError(f"{exc}: {advice}")


def make_client(args: argparse.Namespace) -> Client:
    """A Client with --timeout, --cafile/--cert/--key, --proxy and --noproxy."""
    from ..web import Client
    from ..web._proxy import check_proxy_url

    if args.proxy:
        check_proxy_url(args.proxy, "--proxy")  # worded with the flag, before any traffic
    return Client(
        timeout=args.timeout,
        ssl=cli.tls_context(args),
        proxy=args.proxy,
        no_proxy=args.noproxy,
    )


def failed(status: int, reason: str, url: str) -> int:
    """``--fail``: one line naming the status, exit 22 (curl -f)."""
    print(
        f"{PROG}: error: the server answered {status} {printable(reason)} for "
        f"{printable(url)} (--fail)",
        file=sys.stderr,
        flush=True,
    )
    return FAIL_STATUS


async def fetch_and_show(args: argparse.Namespace) -> int:
    """urlopen(url), then print what the tutorial printed: headers and data."""
    from ..web import HTTPStatusError, ProxyError, Request

    request = Request(args.url, method=args.method)
    for header in args.header:
        name, _, value = header.partition(":")
        request.add_header(name.strip(), value.strip())
    if args.data:
        request.add_data(dict(item.partition("=")[::2] for item in args.data))
    auth = credentials(args.user) if args.user is not None else None
    client = make_client(args)
    try:
        async with client:
            if args.output:
                return await save(client, request, args, auth)
            response = await client.fetch(request, auth=auth)
    except ProxyError as exc:
        raise proxy_failure(exc) from exc
    except HTTPStatusError as exc:  # -o keeps only successful bodies
        if args.fail:
            return failed(exc.status, exc.reason, exc.url)
        raise
    if args.fail and response.status >= 400:
        return failed(response.status, response.reason, response.url)
    print(f"{response.status} {printable(response.reason)}  {printable(response.url)}")
    for name, value in response.headers.items():
        print(f"{printable(name)}: {printable(value)}")
    print()
    text = response.text()
    shown = "\n".join(printable(line.expandtabs()) for line in text[: args.bytes].splitlines())
    print(shown + (f"\n... ({len(response.body)} bytes in all)" if len(text) > args.bytes else ""))
    return 0


async def save(
    client: Client, request: Request, args: argparse.Namespace, auth: tuple[str, str] | None
) -> int:
    """``-o FILE``: stream the body to FILE, bounded by --max-size and --max-ratio."""
    from ..web import BodyTooLarge, CompressionBomb

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
            auth=auth,
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


def add_proxy_arguments(parser: argparse.ArgumentParser) -> None:
    """``--proxy`` and ``--noproxy``, as curl spells them."""
    group = parser.add_argument_group("proxies (default: HTTP_PROXY, HTTPS_PROXY, ALL_PROXY)")
    group.add_argument(
        "--proxy",
        metavar="URL",
        help="forward proxy: http://host:port, socks5://host:port (socks5h: the proxy "
        "resolves names), socks4://; overrides the proxy variables",
    )
    group.add_argument(
        "--noproxy",
        metavar="HOSTS",
        help="comma-separated hosts, domains or networks to reach directly (replaces "
        "NO_PROXY); '*' for no proxy at all",
    )


def refuse_insecure(args: argparse.Namespace) -> None:
    """The old --insecure: refused, with what to do instead."""
    if args.insecure:
        raise cli.UsageError(
            "--insecure is gone: certificates are always verified; to trust a private "
            "or self-signed certificate pass it with --cafile FILE"
        )


def main(argv: list[str] | None = None) -> int:
    """Fetch one URL."""
    parser = cli.parser(PROG, __doc__)
    parser.add_argument("url", help="http:// or https:// URL")
    parser.add_argument("-d", "--data", action="append", metavar="NAME=VALUE", default=[])
    parser.add_argument("-H", "--header", action="append", metavar="NAME: VALUE", default=[])
    parser.add_argument("-X", "--method", help="HTTP method (default GET, POST with -d)")
    parser.add_argument(
        "-u",
        "--user",
        metavar="USER[:PASS]",
        help=f"basic authentication; the password from ${PASSWORD_ENV} or a prompt "
        "when not given (other users can read a command line)",
    )
    parser.add_argument(
        "-f",
        "--fail",
        action="store_true",
        help=f"on a 4xx or 5xx answer print one line and exit {FAIL_STATUS} (curl -f)",
    )
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
    parser.add_argument("--insecure", action="store_true", help=argparse.SUPPRESS)
    add_proxy_arguments(parser)
    cli.add_tls_arguments(parser)
    return cli.main(parser, body, argv, address_flag="the URL")


def body(args: argparse.Namespace) -> int:
    """The body of main(): check the flags, then fetch."""
    refuse_insecure(args)
    if args.user is not None:
        if not args.user.partition(":")[0]:
            raise cli.UsageError("-u needs a user name: -u USER or -u USER:PASSWORD")
        if any(h.partition(":")[0].strip().lower() == "authorization" for h in args.header):
            raise cli.UsageError("give -u or an Authorization header (-H), not both")
    return run(fetch_and_show(args))


if __name__ == "__main__":
    raise SystemExit(main())
