"""htmllib's link extraction, grown into a small link checker for one site.

    python -m asyncnet.demos.links http://127.0.0.1:8000/
    python -m asyncnet.demos.links URL --max-pages 500 --concurrency 8

Fetches pages of the URL's own origin only, a few at a time, obeys robots.txt,
shows a progress bar, and lists every broken link with the page that links to it.
Exit status 0 when nothing is broken, 1 when something is (or the site is unreachable).
"""

from __future__ import annotations

import argparse
import sys

from ..errors import AsyncNetError
from ..runner import run
from ..web.links import CrawlReport, crawl
from ._cli import parse
from .fetch import bar


def show(report: CrawlReport) -> None:
    """The crawl's summary and its broken links."""
    print(
        f"links: {len(report.pages)} pages checked, {len(report.broken)} broken, "
        f"{len(report.external)} external links not followed, "
        f"{len(report.disallowed)} disallowed by robots.txt, {report.skipped} over the limit"
    )
    for broken in report.broken:
        print(f"  BROKEN {broken.url}: {broken.problem} (linked from {broken.referrer or '-'})")


def main(argv: list[str] | None = None) -> int:
    """Crawl one site and report broken links."""
    parser = argparse.ArgumentParser(
        prog="python -m asyncnet.demos.links",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", help="where to start, e.g. http://127.0.0.1:8000/")
    parser.add_argument("--max-pages", type=int, default=100, help="at most this many (100)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests at once (4)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per page (10)")
    parser.add_argument("--ignore-robots", action="store_true", help="do not read robots.txt")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-vv: tracebacks")
    args = parse(parser, argv)
    if args.max_pages < 1 or args.concurrency < 1:
        parser.error("--max-pages and --concurrency must be at least 1")

    def progress(done: int, queued: int, broken: int) -> None:
        print(f"\r{bar(done, queued)[:-6]} pages, {broken} broken", end="", file=sys.stderr)

    try:
        report = run(
            crawl(
                args.url,
                max_pages=args.max_pages,
                concurrency=args.concurrency,
                timeout=args.timeout,
                respect_robots=not args.ignore_robots,
                progress=progress,
            )
        )
    except (AsyncNetError, OSError, ValueError) as exc:
        if args.verbose >= 2:
            raise
        print(f"\nlinks: {exc}", file=sys.stderr)
        return 1
    print(file=sys.stderr)
    if report.pages.get(args.url.split("#")[0]) == 0:  # the start page itself is unreachable
        print(f"links: {report.broken[0].problem} (is the server running?)", file=sys.stderr)
        return 1
    show(report)
    return 1 if report.broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
