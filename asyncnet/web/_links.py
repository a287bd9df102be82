"""htmllib's successor: links out of HTML, and a bounded same-origin crawler.

::

    for url in extract_links(page_html, base_url="http://127.0.0.1:8000/docs/"):
        print(url)

    report = await crawl("http://127.0.0.1:8000/", max_pages=100, concurrency=4)
    for broken in report.broken:
        print(broken.url, broken.problem, "linked from", broken.referrer)

:func:`crawl` checks only links of the start URL's origin, at most ``concurrency``
at a time and at most ``max_pages`` in all, obeys ``robots.txt`` (for its
``user_agent``, per RFC 9309), and reports every link (same origin) that failed: an
HTTP error status, a network error, a redirect it cannot follow.  Links to other
origins are counted, never fetched, and so is a same-origin link that redirects to
another origin: redirects are followed one hop at a time, each hop checked.  Only
HTML pages are read (up to ``max_body`` bytes) for their links; any other link is
checked by its status alone, its body never kept (one of at most :data:`DRAIN_MAX`
bytes is read and dropped, so that its keep-alive connection serves the next link).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import aiohttp

from ..errors import AsyncNetError
from ._client import USER_AGENT, Client
from ._errors import TooManyRedirects, WebConfigurationError

__all__ = ["Broken", "CrawlReport", "crawl", "extract_links"]

logger = logging.getLogger("asyncnet.web.links")

MAX_REDIRECTS = 10
"""Redirect hops followed from one link before it counts as broken (a loop, most likely)."""
ROBOTS_MAX = 512 * 1024
"""How much of a robots.txt is parsed (RFC 9309 2.5: at least 500 KiB); the rest is ignored."""

DRAIN_MAX = 64 * 1024
"""The longest unwanted body (a redirect's, an error page, an image) read to the end to
keep its connection for the next link."""
DRAIN_TIME = 1.0
"""Seconds a crawl waits for such a body before it gives the connection up instead."""

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HTML = frozenset({"text/html", "application/xhtml+xml"})

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
    error: BaseException | None = field(default=None, compare=False, repr=False)
    """The exception behind a failure other than an HTTP status (``None`` for those)."""


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
    truncated: set[str] = field(default_factory=set)
    """HTML pages longer than ``max_body``: links past that point were not followed."""


Progress = Callable[[int, int, int], None]
"""``progress(done, queued_total, broken)``, after each page."""


async def _read_capped(
    client: Client, response: aiohttp.ClientResponse, cap: int
) -> tuple[bytes, bool]:
    """The first ``cap`` bytes of the (decoded) body, and whether there was more."""
    chunks: list[bytes] = []
    size = 0
    async with contextlib.aclosing(client.iter_body(response)) as body:
        async for chunk in body:
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:  # the rest is never read: leaving open() drops the connection
                return b"".join(chunks)[:cap], True
    return b"".join(chunks), False


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know: a peer can name any
        return body.decode("utf-8", errors="replace")


async def _robots(client: Client, start: str) -> RobotFileParser:
    """robots.txt as RFC 9309 2.3.1 reads it: 4xx means no rules, 5xx or unreachable
    means disallow everything, and only the first :data:`ROBOTS_MAX` bytes count."""
    parser = RobotFileParser()
    try:
        async with client.open(urljoin(start, "/robots.txt"), decompress=False) as response:
            if response.status >= 500:
                lines = ["User-agent: *", "Disallow: /"]
                await _drain(response, client.timeout)
            elif response.status >= 300:  # 4xx (or a redirect without a Location)
                lines = []
                await _drain(response, client.timeout)
            else:
                body, cut = await _read_capped(client, response, ROBOTS_MAX)
                lines = _decode(body, response.charset).splitlines()
                if cut and lines:
                    lines.pop()  # a rule cut in half could mean anything
    except TooManyRedirects:  # RFC 9309 2.3.1.2: may be taken as unavailable (4xx)
        lines = []
    except (AsyncNetError, ValueError) as exc:
        logger.debug("robots.txt unreachable (%s): nothing is allowed", exc)
        lines = ["User-agent: *", "Disallow: /"]
    parser.parse(lines)
    return parser


@dataclass
class _Answer:
    """One request's outcome, redirects not followed."""

    status: int
    reason: str
    location: str | None = None
    links: list[str] = field(default_factory=list)
    truncated: bool = False


async def _check(client: Client, url: str, *, timeout: float, max_body: int, read: bool) -> _Answer:
    """GET ``url`` without following a redirect; read the body only of an HTML page
    (and only when ``read``): any other link is checked by its status alone."""
    async with client.open(url, timeout=timeout, max_redirects=0, decompress=False) as response:
        answer = _Answer(response.status, response.reason or "")
        location = response.headers.get("Location")
        if answer.status in _REDIRECTS and location is not None:
            answer.location = urldefrag(urljoin(url, location))[0]
        elif read and answer.status < 400 and response.content_type in _HTML:
            body, answer.truncated = await _read_capped(client, response, max_body)
            answer.links = extract_links(_decode(body, response.charset), str(response.url))
            return answer
        await _drain(response, timeout)
        return answer


async def _drain(response: aiohttp.ClientResponse, timeout: float | None) -> None:
    """Read and drop a small body nobody wants, so that its connection serves the next
    link: one left unread is closed, and every link after it paid for a new connection.

    A body longer than :data:`DRAIN_MAX` (an image, a download) is left unread: a new
    connection costs less than its bytes.  A body that fails or stalls while it is
    drained is no fault of the link, whose status is already known: its connection is
    simply not reused.  The wait is :data:`DRAIN_TIME` at most, and at most half of the
    request's ``timeout``, so that it never runs into the request's own deadline.
    """
    length = response.content_length
    if length is not None and length > DRAIN_MAX:
        return
    received = 0
    try:
        async with asyncio.timeout(DRAIN_TIME if timeout is None else min(DRAIN_TIME, timeout / 2)):
            async for chunk in response.content.iter_any():
                received += len(chunk)
                if received > DRAIN_MAX:
                    return
    except (aiohttp.ClientError, TimeoutError):
        return


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
        raise WebConfigurationError("max_pages and concurrency must be at least 1")
    start = urldefrag(start)[0]
    origin = _origin(start)
    report = CrawlReport()
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(
                Client(timeout=timeout, max_body=max_body, headers={"User-Agent": user_agent})
            )
        robots = await _robots(client, start) if respect_robots else None
        queue: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()
        queued: set[str] = {start}
        queue.put_nowait((start, None))

        def allowed(url: str) -> bool:
            if robots is None or robots.can_fetch(user_agent, url):
                return True
            report.disallowed.add(url)
            return False

        def enqueue(url: str, referrer: str) -> None:
            if _origin(url) != origin:
                report.external.add(url)
            elif url in queued or not allowed(url):
                pass
            elif len(queued) >= max_pages:
                report.skipped += 1
            else:
                queued.add(url)
                queue.put_nowait((url, referrer))

        def broken(
            url: str,
            problem: str,
            referrer: str | None,
            hop: str,
            error: BaseException | None = None,
        ) -> None:
            if hop != url:
                problem = f"{problem} (redirected to {hop})"
            report.broken.append(Broken(url, problem, referrer, error))

        async def visit(url: str, referrer: str | None) -> None:
            # Redirects one hop at a time: each hop must stay on the origin and be allowed.
            current = url
            for _ in range(MAX_REDIRECTS + 1):
                read = True
                if current != url:  # reached by a redirect: read once, like a linked page
                    read = current not in queued and len(queued) < max_pages
                    if read:
                        queued.add(current)
                try:
                    answer = await _check(
                        client, current, timeout=timeout, max_body=max_body, read=read
                    )
                except (AsyncNetError, ValueError) as exc:
                    report.pages[current] = 0
                    broken(url, str(exc), referrer, current, error=exc)
                    return
                report.pages[current] = answer.status
                target = answer.location
                if target is None:
                    if answer.status >= 400:
                        broken(url, f"{answer.status} {answer.reason}", referrer, current)
                    if answer.truncated:
                        report.truncated.add(current)
                    for link in answer.links:
                        enqueue(link, current)
                    return
                if urlsplit(target).scheme not in ("http", "https"):
                    problem = f"{answer.status} redirect to {target}, which is not an http(s) URL"
                    broken(url, problem, referrer, current)
                    return
                if _origin(target) != origin:
                    report.external.add(target)
                    return
                if not allowed(target):
                    return
                current = target
            broken(url, f"more than {MAX_REDIRECTS} redirects", referrer, current)

        async def worker() -> None:
            while True:
                url, referrer = await queue.get()
                try:
                    await visit(url, referrer)
                except Exception as exc:  # a worker never dies: queue.join() would wait for ever
                    logger.debug("checking %s failed unexpectedly", url, exc_info=True)
                    report.pages.setdefault(url, 0)
                    report.broken.append(Broken(url, f"{type(exc).__name__}: {exc}", referrer, exc))
                finally:
                    queue.task_done()
                if progress is not None:
                    progress(len(report.pages), len(queued), len(report.broken))

        # In a TaskGroup, a worker that fails anyway (a progress callback raising) ends
        # the crawl with its error instead of leaving queue.join() waiting for it.
        async with asyncio.TaskGroup() as group:
            workers = [group.create_task(worker()) for _ in range(concurrency)]
            await queue.join()
            for task in workers:
                task.cancel()
    return report
