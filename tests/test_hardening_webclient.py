"""The HTTP client, fetch and links against hostile or broken peers on loopback.

Bounded downloads (size and decompression ratio), a crawler that never leaves its
origin through a redirect, never stalls when a link fails in an unexpected way and
checks big files without reading them, robots.txt per RFC 9309, peer text escaped
before it reaches a terminal, and one-line failures that blame the right thing.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from asyncnet import web as web_errors
from asyncnet.errors import NetworkError, PeerProtocolError
from asyncnet.web import BodyTooLarge, Client, IncompleteBody, WebServer, crawl
from asyncnet.web._client import CHUNK, RATIO_GRACE

from .helpers import program

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MiB = 1024 * 1024


# -- peers ------------------------------------------------------------------------------------


@asynccontextmanager
async def site(routes: dict[str, Handler]) -> AsyncIterator[tuple[str, list[str]]]:
    """An aiohttp site on 127.0.0.1:0 (path -> handler, else 404); yields its base URL
    (no trailing slash) and the paths requested, in order."""
    hits: list[str] = []

    async def dispatch(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        handler = routes.get(request.path)
        if handler is None:
            raise web.HTTPNotFound()
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", dispatch)
    async with WebServer(app, port=0) as server:
        yield server.url.rstrip("/"), hits


def page(html: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    return handler


def body(data: bytes, content_type: str = "application/octet-stream", **headers: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=data, content_type=content_type, headers=headers)

    return handler


def status(code: int, text: str = "") -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=code, text=text)

    return handler


def redirect(location: str, code: int = 302) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=code, headers={"Location": location})

    return handler


Answer = Callable[[str], bytes | None]
"""A raw site's reply to a request path: the response bytes, or None to hang up."""


@asynccontextmanager
async def raw_site(
    answer: Answer, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[str]]]:
    """A raw HTTP server on 127.0.0.1:0, one request per connection: bytes exactly as
    written (reason phrases and headers an aiohttp server would refuse to send)."""
    hits: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode("latin-1")
            hits.append(path)
            raw = answer(path)
            if raw is not None:
                writer.write(raw)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if ssl_context else "http"
    async with server:
        yield f"{scheme}://127.0.0.1:{port}", hits


def raw_response(head: str, content: bytes = b"", content_type: str = "text/html") -> bytes:
    """``HTTP/1.1 <head>`` with a body, closing the connection (latin-1: any byte fits)."""
    return (
        f"HTTP/1.1 {head}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(content)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1") + content


async def run_demo(*args: str, timeout: float = 30) -> tuple[int, str, str]:
    """``python -m asyncnet.demos.ARGS`` while this loop keeps serving: (status, out, err)."""
    async with program("-m", f"asyncnet.demos.{args[0]}", *args[1:]) as proc:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def one_line(result: tuple[int, str, str]) -> str:
    """The single stderr line of an expected failure (exit 1, no traceback)."""
    code, _, err = result
    assert code == 1, result
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def gzip_bomb(size: int = 32 * MiB) -> bytes:
    """``size`` zero bytes, gzip-compressed (about a thousandth of that on the wire)."""
    return gzip.compress(bytes(size), compresslevel=9)


# -- fetch -o: a maximum size and a bounded decompression ratio ------------------------------------


@pytest.mark.slow
async def test_fetch_output_has_a_max_size(tmp_path: Path) -> None:
    """HC3: ``fetch -o`` stops past ``--max-size`` (named in the one line) and saves nothing;
    ``--max-size 0`` is no limit and a suffixed size (``4M``) is understood."""
    out = tmp_path / "big.bin"
    async with site({"/big": body(b"x" * (3 * MiB))}) as (base, _):
        refused = await run_demo("fetch", base + "/big", "-o", str(out), "--max-size", "1048576")
        unlimited = await run_demo("fetch", base + "/big", "-o", str(out), "--max-size", "0")
        suffixed = await run_demo("fetch", base + "/big", "-o", str(out), "--max-size", "4M")
    line = one_line(refused)
    assert "--max-size" in line
    assert "1048576" in line
    assert unlimited[0] == 0, unlimited
    assert suffixed[0] == 0, suffixed
    assert out.stat().st_size == 3 * MiB
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bin"]  # no .part left


@pytest.mark.slow
async def test_fetch_output_refuses_a_bad_max_size() -> None:
    """A --max-size that is not a size: one usage line, exit 2."""
    code, _, err = await run_demo("fetch", "http://127.0.0.1:1/", "-o", "x", "--max-size", "lots")
    assert code == 2
    assert "--max-size" in err
    assert "Traceback" not in err


async def test_fetch_output_stops_a_gzip_bomb(tmp_path: Path) -> None:
    """HC3: 32 MiB of zeros in a ~32 KiB gzip body: ``fetch -o`` (default flags) stops at the
    decompression ratio, names ``--max-ratio``, and leaves neither the file nor a .part."""
    out = tmp_path / "bomb.bin"
    bomb = gzip_bomb()
    async with site({"/bomb": body(bomb, **{"Content-Encoding": "gzip"})}) as (base, _):
        result = await run_demo("fetch", base + "/bomb", "-o", str(out))
    line = one_line(result)
    assert "--max-ratio" in line
    assert list(tmp_path.iterdir()) == []


async def test_download_bounds_the_decompression_ratio(tmp_path: Path) -> None:
    """HC3: Client.download() stops a body that expands more than ``max_ratio`` times its
    wire size (after the first few MiB), removes the partial file, and reads it whole
    with ``max_ratio=None``."""
    out = tmp_path / "bomb.bin"
    bomb = gzip_bomb()
    async with site({"/bomb": body(bomb, **{"Content-Encoding": "gzip"})}) as (base, _):
        async with Client(timeout=10) as client:
            with pytest.raises(web_errors.CompressionBomb, match="100 times") as caught:
                await client.download(base + "/bomb", out)
            assert list(tmp_path.iterdir()) == []
            # stopped once past the first few MiB, not at the end of the 32 MiB
            assert caught.value.size <= RATIO_GRACE + CHUNK
            assert caught.value.wire == len(bomb)
            size = await client.download(base + "/bomb", out, max_ratio=None)
    assert size == out.stat().st_size == 32 * MiB


async def test_compressed_bodies_arrive_byte_exact(tmp_path: Path) -> None:
    """gzip, zlib-wrapped deflate, raw deflate and a chunked gzip stream: fetch() and
    download() give the original bytes."""
    original = b"".join(b"line %d of a compressible text\n" % i for i in range(200_000))
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    encoded = {
        "/gzip": (gzip.compress(original), "gzip"),
        "/zlib": (zlib.compress(original), "deflate"),
        "/raw": (raw_deflate.compress(original) + raw_deflate.flush(), "deflate"),
    }
    routes = {
        path: body(data, **{"Content-Encoding": coding}) for path, (data, coding) in encoded.items()
    }

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Encoding": "gzip"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        data = encoded["/gzip"][0]
        for start in range(0, len(data), 7000):
            await response.write(data[start : start + 7000])
        await response.write_eof()
        return response

    routes["/chunked"] = chunked
    async with site(routes) as (base, _), Client(timeout=10) as client:
        for path in [*encoded, "/chunked"]:
            assert (await client.fetch(base + path)).body == original, path
            size = await client.download(base + path, tmp_path / "out")
            assert size == len(original)
            assert (tmp_path / "out").read_bytes() == original, path


async def test_truncated_gzip_body_is_an_error_not_short_data() -> None:
    """HC1: a gzip stream cut short (its Content-Length matching the cut): IncompleteBody,
    never the first half of the text as if it were all."""
    data = gzip.compress(b"".join(b"%d\n" % i for i in range(100_000)))
    async with site({"/cut": body(data[: len(data) // 2], **{"Content-Encoding": "gzip"})}) as (
        base,
        _,
    ):
        async with Client(timeout=10) as client:
            with pytest.raises(IncompleteBody, match="compressed"):
                await client.fetch(base + "/cut")


async def test_an_encoding_the_client_cannot_decode_is_named() -> None:
    """A Content-Encoding asyncnet did not ask for: an error naming it, not garbage."""
    async with site({"/br": body(b"\x8b\x02\x80hi\x03", **{"Content-Encoding": "br"})}) as (
        base,
        _,
    ):
        async with Client(timeout=10) as client:
            with pytest.raises(PeerProtocolError, match="'br'"):
                await client.fetch(base + "/br")


async def test_fetch_max_body_still_counts_decoded_bytes() -> None:
    """HC3: fetch()'s max_body is after decompression (the bomb stops at the limit)."""
    async with site({"/bomb": body(gzip_bomb(), **{"Content-Encoding": "gzip"})}) as (base, _):
        async with Client(timeout=10, max_body=MiB) as client:
            with pytest.raises(BodyTooLarge, match="1048576"):
                await client.fetch(base + "/bomb")


# -- links: redirects, workers that never die, big files ---------------------------------------


async def test_crawl_never_follows_a_redirect_to_another_origin() -> None:
    """HC2: a same-origin link that redirects elsewhere is an external link: the other origin
    is never contacted; a same-origin redirect is followed and its page read."""
    async with site({"/x": page("elsewhere")}) as (other, other_hits):
        routes = {
            "/": page('<a href="/go">go</a> <a href="/moved">moved</a>'),
            "/go": redirect(other + "/x"),
            "/moved": redirect("/new/", 301),
            "/new/": page('<a href="leaf.html">leaf</a>'),
            "/new/leaf.html": page("leaf"),
        }
        async with site(routes) as (base, hits):
            async with asyncio.timeout(20):
                report = await crawl(base + "/", respect_robots=False)
    assert other_hits == []
    assert other + "/x" in report.external
    assert report.broken == []
    assert "/new/leaf.html" in hits  # links resolved against the page redirected to
    assert report.pages[base + "/moved"] == 301
    assert report.pages[base + "/new/"] == 200


async def test_crawl_bounds_a_chain_of_redirects() -> None:
    """HC2: a redirect chain longer than the bound is one broken link, not a crawl of it."""
    routes: dict[str, Handler] = {"/": page('<a href="/r0">r</a>')}
    routes.update({f"/r{i}": redirect(f"/r{i + 1}") for i in range(30)})
    async with site(routes) as (base, hits):
        async with asyncio.timeout(20):
            report = await crawl(base + "/", respect_robots=False)
    assert [(b.url, b.referrer) for b in report.broken] == [(base + "/r0", base + "/")]
    assert "redirects" in report.broken[0].problem
    assert len(hits) <= 13


@pytest.mark.timeout(60)
async def test_crawl_finishes_when_links_redirect_to_file_urls() -> None:
    """Six links redirecting to file:// and ftp:// with four workers: six broken links with
    their reason, and the crawl ends (a worker that died used to hang queue.join())."""
    routes = {"/": page("".join(f'<a href="/f{i}">{i}</a>' for i in range(6)))}
    routes.update({f"/f{i}": redirect("file:///etc/passwd") for i in range(3)})
    routes.update({f"/f{i}": redirect("ftp://127.0.0.1/x") for i in range(3, 6)})
    async with site(routes) as (base, _):
        async with asyncio.timeout(20):
            report = await crawl(base + "/", concurrency=4, respect_robots=False)
    assert sorted(b.url for b in report.broken) == [f"{base}/f{i}" for i in range(6)]
    for broken in report.broken:
        assert "file:///etc/passwd" in broken.problem or "ftp://127.0.0.1/x" in broken.problem


@pytest.mark.timeout(60)
async def test_crawl_finishes_when_the_server_hangs_up() -> None:
    """Links whose server closes the connection without an answer are broken links (the
    client's raw aiohttp error used to kill a worker)."""

    def answer(path: str) -> bytes | None:
        if path == "/":
            links = "".join(f'<a href="/drop{i}">{i}</a>' for i in range(6))
            return raw_response("200 OK", links.encode())
        return None

    async with raw_site(answer) as (base, _):
        async with asyncio.timeout(20):
            report = await crawl(base + "/", concurrency=4, respect_robots=False)
    assert sorted(b.url for b in report.broken) == [f"{base}/drop{i}" for i in range(6)]
    assert all("closed the connection" in b.problem for b in report.broken)


@pytest.mark.slow
async def test_crawl_checks_big_files_without_reading_them() -> None:
    """A 20 MiB file is a working link (its body is not read); an HTML page over max_body
    is read up to it: not broken, its first links followed, noted as truncated."""
    huge = '<a href="/leaf.html">leaf</a>' + "<p>filler</p>" * (3 * MiB // 13)
    routes = {
        "/": page('<a href="/big.bin">big</a> <a href="/huge.html">huge</a>'),
        "/big.bin": body(bytes(20 * MiB)),
        "/huge.html": page(huge),
        "/leaf.html": page("leaf"),
    }
    async with site(routes) as (base, hits):
        async with asyncio.timeout(20):
            report = await crawl(base + "/", respect_robots=False)
    assert report.broken == []
    assert report.pages[base + "/big.bin"] == 200
    assert "/leaf.html" in hits
    assert report.truncated == {base + "/huge.html"}


# -- robots.txt per RFC 9309 ------------------------------------------------------------------


async def test_robots_txt_over_512_kib_is_obeyed_up_to_512_kib() -> None:
    """RFC 9309 2.5: a robots.txt over 512 KiB is parsed up to 512 KiB (it used to be
    ignored whole: everything allowed); rules past that point are ignored."""
    padding = "# a comment line to make the file long\n" * (600 * 1024 // 39)
    robots = "User-agent: *\nDisallow: /private/\n" + padding + "Disallow: /late/\n"
    assert len(robots) > 512 * 1024
    routes = {
        "/robots.txt": body(robots.encode(), "text/plain"),
        "/": page('<a href="/private/p.html">p</a> <a href="/late/l.html">l</a>'),
        "/private/p.html": page("secret"),
        "/late/l.html": page("late"),
    }
    async with site(routes) as (base, hits):
        report = await crawl(base + "/")
    assert "/private/p.html" not in hits
    assert report.disallowed == {base + "/private/p.html"}
    assert "/late/l.html" in hits


@pytest.mark.parametrize(
    ("code", "allowed"), [(500, False), (503, False), (404, True), (403, True)]
)
async def test_robots_txt_status_decides(code: int, allowed: bool) -> None:
    """RFC 9309 2.3.1: robots.txt answering 5xx means complete disallow (it used to mean
    allow all); 4xx means no rules at all."""
    routes = {
        "/robots.txt": status(code, "Disallow: /"),
        "/": page('<a href="/a.html">a</a>'),
        "/a.html": page("a"),
    }
    async with site(routes) as (base, hits):
        report = await crawl(base + "/")
    assert ("/a.html" in hits) is allowed
    assert report.disallowed == (set() if allowed else {base + "/a.html"})
    assert report.broken == []


async def test_robots_txt_unreachable_means_disallow_all() -> None:
    """RFC 9309 2.3.1.4: a robots.txt lost to a network error is a complete disallow."""

    def answer(path: str) -> bytes | None:
        if path == "/robots.txt":
            return None  # hang up without an answer
        return raw_response("200 OK", b'<a href="/a.html">a</a>')

    async with raw_site(answer) as (base, hits):
        report = await crawl(base + "/")
    assert "/a.html" not in hits
    assert report.disallowed == {base + "/a.html"}


# -- peer text on the terminal ----------------------------------------------------------------


@pytest.mark.slow
async def test_fetch_escapes_the_reason_phrase() -> None:
    """A reason phrase carrying ESC and BEL (retitle the window, clear the screen) is shown
    escaped, never as raw control bytes."""
    hostile = "200 OK\x1b]0;owned\x07\x1b[2J\u202e"

    def answer(path: str) -> bytes:
        return (f"HTTP/1.1 {hostile}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi").encode()

    async with raw_site(answer) as (base, _):
        code, out, err = await run_demo("fetch", base + "/")
    assert code == 0, err
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "\u202e" not in out
    assert "\\x1b]0;owned\\x07\\x1b[2J\\u202e" in out


@pytest.mark.slow
async def test_links_escapes_broken_lines() -> None:
    """BROKEN lines show a hostile URL and reason phrase escaped."""

    def answer(path: str) -> bytes:
        if path == "/":
            return raw_response("200 OK", b'<a href="/x\x1b[2J">x</a> <a href="/gone">g</a>')
        return raw_response("404 Gone\x1b]0;owned\x07", b"", "text/plain")

    async with raw_site(answer) as (base, _):
        code, out, err = await run_demo("links", base + "/")
    assert code == 1, err
    assert "\x1b" not in out
    assert "\x07" not in out
    assert f"BROKEN {base}/x\\x1b[2J: " in out
    assert f"BROKEN {base}/gone: 404 Gone\\x1b]0;owned\\x07" in out


# -- one line that blames the right thing -----------------------------------------------------


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x"])
@pytest.mark.slow
async def test_fetch_redirect_to_another_scheme_is_one_line(target: str) -> None:
    """A redirect to file:// or ftp:// is refused in one line naming it (it was a traceback)."""
    async with site({"/r": redirect(target)}) as (base, _):
        result = await run_demo("fetch", base + "/r")
        async with Client(timeout=10) as client:
            with pytest.raises(PeerProtocolError, match="not an http"):
                await client.fetch(base + "/r")
    assert target in one_line(result)


@pytest.mark.slow
async def test_fetch_hang_up_is_one_line() -> None:
    """A server that closes the connection without answering: one line, not a traceback."""
    async with raw_site(lambda path: None) as (base, _):
        result = await run_demo("fetch", base + "/")
        async with Client(timeout=10) as client:
            with pytest.raises(NetworkError, match="closed the connection"):
                await client.fetch(base + "/")
    assert "closed the connection" in one_line(result)


@pytest.mark.slow
async def test_fetch_dead_proxy_names_the_proxy(closed_port: int) -> None:
    """A --proxy nothing listens on is named (and --proxy), not the target URL."""
    port = closed_port
    async with site({"/": page("up")}) as (base, _):
        result = await run_demo("fetch", base + "/", "--proxy", f"http://127.0.0.1:{port}")
        async with Client(timeout=10, proxy=f"http://127.0.0.1:{port}") as client:
            with pytest.raises(web_errors.ProxyError, match=f"proxy 127.0.0.1:{port}"):
                await client.fetch(base + "/")
    line = one_line(result)
    assert f"127.0.0.1:{port}" in line
    assert "check --proxy" in line
    assert "check the URL" not in line


async def test_an_unresolvable_proxy_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A --proxy whose name does not resolve: a ProxyError naming it; the advice is
    --proxy.  (No DNS query is sent: the loop's getaddrinfo is replaced.)"""
    import aiohttp.resolver

    from asyncnet.demos._explain import explain

    if aiohttp.resolver.DefaultResolver is not aiohttp.resolver.ThreadedResolver:
        pytest.skip("aiohttp resolves without loop.getaddrinfo here (aiodns)")
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: str, *args: object, **kwargs: object) -> object:
        if host == "nosuch.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return await real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    async with site({"/": page("up")}) as (base, hits):
        async with Client(timeout=10, proxy="http://nosuch.invalid:8080") as client:
            with pytest.raises(web_errors.ProxyError) as caught:
                await client.fetch(base + "/")
    assert hits == []
    message = explain(caught.value)
    assert message is not None
    assert "proxy nosuch.invalid:8080: Name or service not known" in message
    assert message.endswith("check --proxy")


async def test_an_unknown_charset_is_read_as_utf8() -> None:
    """A page naming a charset Python does not know is read as UTF-8: fetch shows it
    (it ended in a LookupError traceback) and links follows its links."""

    def answer(path: str) -> bytes:
        content = b'<a href="/a.html">caf\xc3\xa9</a>' if path == "/" else b"a"
        return raw_response("200 OK", content, "text/html; charset=bogus")

    async with raw_site(answer) as (base, hits):
        code, out, err = await run_demo("fetch", base + "/")
        report = await crawl(base + "/", respect_robots=False)
    assert code == 0, err
    assert "café" in out
    assert report.broken == []
    assert "/a.html" in hits


@pytest.mark.parametrize("demo", ["links", "fetch"])
@pytest.mark.slow
async def test_tls_verification_failure_is_a_certificate_problem(demo: str) -> None:
    """An untrusted certificate is reported as a certificate problem, never with the
    "is the server running?" hint (the server is running: it sent a certificate)."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    async with raw_site(lambda path: raw_response("200 OK"), ssl_context=context) as (base, _):
        line = one_line(await run_demo(demo, base + "/"))
    assert "certificate" in line
    assert "is the server running" not in line
