"""htmllib's link extraction, grown into a small link checker for one site.

    python -m asyncnet.demos.links http://127.0.0.1:8000/
    python -m asyncnet.demos.links URL --max-pages 500 --concurrency 8
    python -m asyncnet.demos.links https://intranet.example/ --cafile my-ca.pem

Checks links of the URL's own origin only, a few at a time, obeys robots.txt,
shows a progress bar, and lists every broken link with the page that links to it
(what the site sent is shown escaped).  A redirect to another origin is not
followed; a file that is not HTML is checked without downloading it.  TLS and
proxies as in fetch: --cafile/--cert/--key, --proxy, --noproxy, and the proxy
variables (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY).
Exit status 0 when nothing is broken, 1 when something is (or the site is unreachable).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .. import run
from ..errors import ConfigurationError
from ..text import printable
from . import _cli as cli
from .fetch import add_proxy_arguments, bar, make_client, proxy_failure

if TYPE_CHECKING:  # aiohttp is imported when the crawl runs, so that --help stays quick
    from ..web import CrawlReport
    from ..web._links import Progress


def show(report: CrawlReport) -> None:
    """The crawl's summary and its broken links."""
    print(
        f"links: {len(report.pages)} pages checked, {len(report.broken)} broken, "
        f"{len(report.external)} external links not followed, "
        f"{len(report.disallowed)} disallowed by robots.txt, {report.skipped} over the limit"
    )
    for broken in report.broken:  # the site's words: escaped, they cannot drive the terminal
        print(
            f"  BROKEN {printable(broken.url)}: {printable(broken.problem)}"
            f" (linked from {printable(broken.referrer or '-')})"
        )
    for url in sorted(report.truncated):
        print(f"  LONG {printable(url)}: read in part; links past that point not checked")


def main(argv: list[str] | None = None) -> int:
    """Crawl one site and report broken links."""
    parser = cli.parser("python -m asyncnet.demos.links", __doc__)
    parser.add_argument("url", help="where to start, e.g. http://127.0.0.1:8000/")
    parser.add_argument(
        "--max-pages", type=cli.positive_int, default=100, help="at most this many (100)"
    )
    parser.add_argument(
        "--concurrency", type=cli.positive_int, default=4, help="requests at once (4)"
    )
    parser.add_argument(
        "--timeout", type=cli.positive_float, default=10.0, help="seconds per page (10)"
    )
    parser.add_argument("--ignore-robots", action="store_true", help="do not read robots.txt")
    add_proxy_arguments(parser)
    cli.add_tls_arguments(parser)
    return cli.main(parser, check, argv, address_flag="the URL")


async def crawl_site(args: argparse.Namespace, progress: Progress | None) -> CrawlReport:
    """crawl() with a client built from the TLS and proxy flags."""
    from ..web import crawl

    async with make_client(args) as client:
        return await crawl(
            args.url,
            max_pages=args.max_pages,
            concurrency=args.concurrency,
            timeout=args.timeout,
            respect_robots=not args.ignore_robots,
            progress=progress,
            client=client,
        )


def check(args: argparse.Namespace) -> int:
    """The body of main(): crawl, then report (exit 1 when something is broken)."""

    def progress(done: int, queued: int, broken: int) -> None:
        print(f"\r{bar(done, queued)[:-6]} pages, {broken} broken", end="", file=sys.stderr)

    # A bar redrawn with \r is for a terminal; in a log it is noise before the one line.
    tty = sys.stderr.isatty()
    try:
        report = run(crawl_site(args, progress if tty else None))
    except ValueError as exc:  # a URL crawl() refuses (not http, no host)
        raise ConfigurationError(str(exc)) from exc
    finally:
        if tty:
            print(file=sys.stderr)
    start = args.url.split("#")[0]
    if report.pages.get(start) == 0:  # the start page itself is unreachable
        failure = next(b for b in report.broken if b.url == start)
        if failure.error is None:
            raise ConfigurationError(f"{failure.problem}: is the server running? check the URL")
        from ..web import ProxyError

        if isinstance(failure.error, ProxyError):  # named by where it was set
            raise proxy_failure(failure.error) from failure.error
        raise failure.error  # worded by explain(): refused, timed out, a certificate...
    show(report)
    return 1 if report.broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
