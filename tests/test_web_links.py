"""Link extraction and the bounded same-origin crawler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from asyncnet.web import WebServer, crawl, extract_links


def test_extract_links_resolves_and_filters() -> None:
    page = """<html><head><link rel=stylesheet href="/style.css"></head><body>
    <a href="b.html#section">b</a> <a href='../up.html'>up</a> <A HREF="b.html">again</A>
    <img src="img/x.png"> <script src="//cdn.example/x.js"></script>
    <a href="javascript:alert(1)">js</a> <a href="mailto:a@example.org">mail</a>
    <a href="  spaced.html  ">s</a> <a>no href</a> <a href="?q=1&amp;r=2">query</a>
    </body></html>"""
    assert extract_links(page, "http://127.0.0.1:8000/docs/index.html") == [
        "http://127.0.0.1:8000/style.css",
        "http://127.0.0.1:8000/docs/b.html",
        "http://127.0.0.1:8000/up.html",
        "http://127.0.0.1:8000/docs/img/x.png",
        "http://cdn.example/x.js",
        "http://127.0.0.1:8000/docs/spaced.html",
        "http://127.0.0.1:8000/docs/index.html?q=1&r=2",
    ]


def test_base_href_wins() -> None:
    page = '<base href="http://127.0.0.1:9000/root/"><a href="x.html">x</a>'
    assert extract_links(page, "http://127.0.0.1:8000/") == ["http://127.0.0.1:9000/root/x.html"]


def test_broken_html_does_not_raise() -> None:
    links = extract_links("<a href='a.html'<<<>>><a href=\x00 <p", "http://127.0.0.1/")
    assert links in ([], ["http://127.0.0.1/a.html"])


@asynccontextmanager
async def site(
    pages: dict[str, str], delay: float = 0.0
) -> AsyncIterator[tuple[str, list[str], list[int]]]:
    """Serve ``pages`` (path -> html; robots.txt as text); record hits and peak concurrency."""
    hits: list[str] = []
    peak = [0, 0]  # current, highest

    async def handler(request: web.Request) -> web.Response:
        hits.append(request.path)
        peak[0] += 1
        peak[1] = max(peak[1], peak[0])
        try:
            if delay:
                await asyncio.sleep(delay)  # keeps requests overlapping, to measure the bound
            body = pages.get(request.path)
            if body is None:
                raise web.HTTPNotFound()
            kind = "text/plain" if request.path.endswith(".txt") else "text/html"
            return web.Response(text=body, content_type=kind)
        finally:
            peak[0] -= 1

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    async with WebServer(app, port=0) as server:
        yield server.url.rstrip("/"), hits, peak


async def test_crawl_reports_broken_links_and_obeys_robots() -> None:
    async with site({}) as (other, other_hits, _):
        pages = {
            "/": '<a href="/a.html">a</a> <a href="/private/p.html">p</a> '
            f'<a href="{other}/x">x</a>',
            "/a.html": '<a href="/">home</a> <a href="/gone.html">gone</a> <a href="/b.txt">b</a>',
            "/b.txt": '<a href="/never-parsed.html">text, not html</a>',
            "/private/p.html": "secret",
            "/robots.txt": "User-agent: *\nDisallow: /private/\n",
        }
        async with site(pages) as (base, hits, _):
            seen: list[tuple[int, int, int]] = []
            report = await crawl(base + "/", progress=lambda *a: seen.append(a))
    assert sorted(report.pages) == sorted(
        [base + "/", base + "/a.html", base + "/gone.html", base + "/b.txt"]
    )
    assert [(b.url, b.problem, b.referrer) for b in report.broken] == [
        (base + "/gone.html", "404 Not Found", base + "/a.html")
    ]
    assert report.disallowed == {base + "/private/p.html"}
    assert report.external == {other + "/x"}
    assert other_hits == []  # another origin is never fetched
    assert "/private/p.html" not in hits
    assert "/never-parsed.html" not in hits
    assert sorted(hits) == sorted(["/robots.txt", "/", "/a.html", "/gone.html", "/b.txt"])
    assert seen[-1] == (4, 4, 1)


async def test_crawl_is_bounded_in_pages_and_concurrency() -> None:
    pages = {"/": "".join(f'<a href="/p{i}.html">{i}</a>' for i in range(50))}
    pages.update({f"/p{i}.html": "<p>leaf</p>" for i in range(50)})
    async with site(pages, delay=0.02) as (base, hits, peak):
        report = await crawl(base + "/", max_pages=12, concurrency=3, respect_robots=False)
    assert len(report.pages) == 12
    assert len(hits) == 12
    assert report.skipped == 50 - 11
    assert peak[1] <= 3


async def test_crawl_of_an_unreachable_site_reports_it() -> None:
    async with site({}) as (base, _, _):
        pass  # closed: nothing listens there any more
    report = await crawl(base + "/", timeout=5)
    assert report.pages == {base + "/": 0}
    assert "failed" in report.broken[0].problem
