"""htmllib's successor: links out of HTML, and a bounded same-origin crawler.

::

    for url in extract_links(page_html, base_url="http://127.0.0.1:8000/docs/"):
        print(url)

    report = await crawl("http://127.0.0.1:8000/", max_pages=100, concurrency=4)
    for broken in report.broken:
        print(broken.url, broken.problem, "linked from", broken.referrer)

:func:`crawl` fetches only pages of the start URL's origin, at most ``concurrency``
at a time and at most ``max_pages`` in all, obeys ``robots.txt`` (for its
``user_agent``), and reports every link (same origin) that failed: an HTTP error
status or a network error.  Links to other origins are counted, never fetched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit
from urllib.robotparser import RobotFileParser

from ..errors import AsyncNetError
from .client import USER_AGENT, Client

__all__ = ["Broken", "CrawlReport", "crawl", "extract_links"]

_LINK_ATTRIBUTES = {
    "a": "href",
    "area": "href",
    "link": "href",
    "img": "src",
    "script": "src",
    "iframe": "src",
    "source": "src",
    "frame": "src",
}


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "base" and self.base is None and values.get("href"):
            self.base = values["href"]
        wanted = _LINK_ATTRIBUTES.get(tag)
        if wanted is not None and values.get(wanted):
            self.links.append(str(values[wanted]).strip())


def extract_links(html_text: str, base_url: str) -> list[str]:
    """Absolute http(s) URLs the page links to, in order, without fragments or repeats.

    Relative links are resolved against ``<base href>`` when the page has one, else
    ``base_url``; ``javascript:``, ``mailto:`` and other schemes are dropped.
    """
    parser = _LinkParser()
    parser.feed(html_text)
    parser.close()
    base = urljoin(base_url, parser.base) if parser.base else base_url
    seen: dict[str, None] = {}
    for link in parser.links:
        absolute, _ = urldefrag(urljoin(base, link))
        if urlsplit(absolute).scheme in ("http", "https"):
            seen.setdefault(absolute, None)
    return list(seen)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


@dataclass(frozen=True)
class Broken:
    """A link that failed: its URL, what went wrong, and the page that linked to it."""

    url: str
    problem: str
    referrer: str | None


@dataclass
class CrawlReport:
    """What a crawl found."""

    pages: dict[str, int] = field(default_factory=dict)
    """Each fetched URL and its status (0 for a network error)."""
    broken: list[Broken] = field(default_factory=list)
    external: set[str] = field(default_factory=set)
    """Links to other origins (not fetched)."""
    disallowed: set[str] = field(default_factory=set)
    """Same-origin links robots.txt told us to leave alone."""
    skipped: int = 0
    """Same-origin links not fetched because ``max_pages`` was reached."""


Progress = Callable[[int, int, int], None]
"""``progress(done, queued_total, broken)``, after each page."""


async def _robots(client: Client, start: str, user_agent: str) -> RobotFileParser:
    parser = RobotFileParser()
    robots_url = urljoin(start, "/robots.txt")
    try:
        response = await client.fetch(robots_url, max_body=512 * 1024)
    except AsyncNetError:
        response = None
    if response is None or response.status >= 400:
        parser.parse([])  # no robots.txt: everything is allowed
    else:
        parser.parse(response.text().splitlines())
    return parser


async def crawl(
    start: str,
    *,
    max_pages: int = 100,
    concurrency: int = 4,
    timeout: float = 10.0,
    max_body: int = 2 * 1024 * 1024,
    user_agent: str = USER_AGENT,
    respect_robots: bool = True,
    progress: Progress | None = None,
    client: Client | None = None,
) -> CrawlReport:
    """Crawl ``start``'s origin breadth first, bounded; return the :class:`CrawlReport`."""
    if max_pages < 1 or concurrency < 1:
        raise ValueError("max_pages and concurrency must be at least 1")
    start = urldefrag(start)[0]
    origin = _origin(start)
    report = CrawlReport()
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(
                Client(timeout=timeout, max_body=max_body, headers={"User-Agent": user_agent})
            )
        robots = await _robots(client, start, user_agent) if respect_robots else None
        queue: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()
        queued: set[str] = {start}
        queue.put_nowait((start, None))

        def enqueue(url: str, referrer: str) -> None:
            if _origin(url) != origin:
                report.external.add(url)
            elif url in queued:
                pass
            elif robots is not None and not robots.can_fetch(user_agent, url):
                report.disallowed.add(url)
            elif len(queued) >= max_pages:
                report.skipped += 1
            else:
                queued.add(url)
                queue.put_nowait((url, referrer))

        async def visit(url: str, referrer: str | None) -> None:
            try:
                response = await client.fetch(url, timeout=timeout, max_body=max_body)
            except (AsyncNetError, ValueError) as exc:
                report.pages[url] = 0
                report.broken.append(Broken(url, str(exc), referrer))
                return
            report.pages[url] = response.status
            if response.status >= 400:
                report.broken.append(Broken(url, f"{response.status} {response.reason}", referrer))
                return
            if response.headers.get("Content-Type", "").startswith("text/html"):
                for link in extract_links(response.text(), response.url):
                    enqueue(link, url)

        async def worker() -> None:
            while True:
                url, referrer = await queue.get()
                try:
                    await visit(url, referrer)
                finally:
                    queue.task_done()
                    if progress is not None:
                        progress(len(report.pages), len(queued), len(report.broken))

        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        try:
            await queue.join()
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
    return report
