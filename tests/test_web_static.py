"""The static file server: traversal (H1), escaping (H2), redirects (H3), HTTP features, H8.

Hostile paths go over raw sockets: an HTTP client would normalise them first.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import struct
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncnet.testing import can_bind_ipv6
from asyncnet.web import WebServer, web_server
from asyncnet.web._static import StaticFiles, resolve

from .web_helpers import raw_get

SECRET = b"TOP-SECRET-CONTENTS"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A root with files, a subdirectory, a dotfile, and escape hatches to a secret outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "secret.txt.gz").write_bytes(SECRET)
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_text("hello, world\n")
    (root / "subdir").mkdir()
    (root / "subdir" / "note.txt").write_text("in subdir\n")
    (root / ".env").write_bytes(SECRET)
    (root / "escape").symlink_to(outside / "secret.txt")
    (root / "escape-dir").symlink_to(outside)
    (root / "page.txt").write_text("plain page\n")
    (root / "page.txt.gz").symlink_to(outside / "secret.txt.gz")  # a .gz sibling that escapes
    (root / "to-dotfile").symlink_to(root / ".env")
    return root


@pytest.fixture
async def server(site: Path) -> AsyncIterator[WebServer]:
    async with web_server(site, port=0, form=False) as server:
        yield server


HOSTILE_PATHS = [
    "/../outside/secret.txt",
    "/%2e%2e/outside/secret.txt",
    "/%2E%2E/outside/secret.txt",
    "/%252e%252e/outside/secret.txt",
    "/..%2f..%2foutside/secret.txt",
    "/subdir/..%2f..%2foutside/secret.txt",
    "/subdir/../../outside/secret.txt",
    "/.%2e/outside/secret.txt",
    "/..\\outside\\secret.txt",
    "/..%5coutside%5csecret.txt",
    "/subdir%5c..%5c..%5coutside%5csecret.txt",
    "/hello.txt%00.html",
    "/%00",
    "/escape",
    "/escape-dir/secret.txt",
    "/escape-dir/",
    "/.env",
    "/%2eenv",
    "/subdir/../.env",
    "/to-dotfile",
    "//outside/secret.txt",
    "/" + "a/" * 200 + "../" * 201 + "outside/secret.txt",
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
async def test_traversal_never_serves_outside_files(
    server: WebServer, site: Path, path: str
) -> None:
    """H1: encoded, doubled, backslash, NUL, symlink escapes: 4xx, never the bytes, never 500."""
    async with asyncio.timeout(5):
        response = await raw_get(server.address[1], path)
    assert SECRET not in response.raw
    assert response.status in (400, 403, 404), (path, response.status)


async def test_absolute_filesystem_path_is_not_served(server: WebServer, site: Path) -> None:
    """H1: /abs/path means root/abs/path, never the file system's /abs/path."""
    target = str(site.parent / "outside" / "secret.txt")
    async with asyncio.timeout(5):
        response = await raw_get(server.address[1], target)
    assert response.status == 404
    assert SECRET not in response.raw


async def test_gz_sibling_symlink_is_not_served(server: WebServer) -> None:
    """H1: FileResponse's compressed-sibling lookup must not follow a symlink out of the root."""
    async with asyncio.timeout(5):
        response = await raw_get(server.address[1], "/page.txt", "Accept-Encoding: gzip, br\r\n")
    assert response.status == 200
    assert SECRET not in response.raw
    assert b"plain page" in response.body


async def test_hidden_files_can_be_shown_on_request(site: Path) -> None:
    async with web_server(site, port=0, show_hidden=True) as server:
        async with asyncio.timeout(5):
            response = await raw_get(server.address[1], "/.env")
            outside = await raw_get(server.address[1], "/escape")
    assert response.status == 200
    assert response.body == SECRET  # the root's own dotfile, explicitly allowed
    assert outside.status == 404  # but a symlink out of the root still is not


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.hrefs += [v or "" for k, v in attrs if k == "href"]

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


async def test_listing_escapes_names_and_encodes_links(tmp_path: Path) -> None:
    """H2: hostile file names appear as text, links are percent-encoded, no fs path shown."""
    root = tmp_path / "root"
    root.mkdir()
    names = ["<img src=x onerror=alert(1)>.txt", "a&b\"c'.txt", "plain.txt"]
    for name in names:
        (root / name).write_text("x")
    async with web_server(root, port=0) as server:
        async with asyncio.timeout(5):
            listing = await raw_get(server.address[1], "/")
            error = await raw_get(server.address[1], "/<script>alert(1)</script>")
    parser = _Tags()
    parser.feed(listing.text)
    assert "img" not in parser.tags
    assert "script" not in parser.tags
    assert "<img" not in listing.text
    assert "&lt;img src=x onerror=alert(1)&gt;.txt" in listing.text
    for name in names:
        assert name in "".join(parser.texts)  # shown as text, exactly
    assert "%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.txt" in parser.hrefs
    assert "a%26b%22c%27.txt" in parser.hrefs
    assert str(tmp_path) not in listing.text
    assert listing.headers["x-content-type-options"] == "nosniff"
    assert error.status == 404
    assert "<script>" not in error.text
    assert str(tmp_path) not in error.text


async def test_directory_redirect_has_one_leading_slash(server: WebServer) -> None:
    """H3: //evil.example/... never becomes a Location pointing at another host."""
    port = server.address[1]
    async with asyncio.timeout(5):
        plain = await raw_get(port, "/subdir")
        doubled = await raw_get(port, "//subdir")
        hostile = await raw_get(port, "//evil.example/..%2f..%2f/subdir")
        tripled = await raw_get(port, "///evil.example//subdir")
    assert plain.status == 301
    assert plain.headers["location"] == "/subdir/"
    assert doubled.status == 301
    assert doubled.headers["location"] == "/subdir/"
    for response in (hostile, tripled):
        location = response.headers.get("location", "/")
        assert location.startswith("/")
        assert not location.startswith("//")
        assert "evil.example" not in location or not re.match(r"^/+evil", location)


async def test_index_listing_types_head_range_etag(server: WebServer, site: Path) -> None:
    """The http.server features: index.html, listings, types, HEAD, Range, ETag, 304."""
    (site / "subdir" / "index.html").write_text("<p>index</p>")
    async with aiohttp.ClientSession() as session, asyncio.timeout(10):
        url = server.url
        async with session.get(url) as response:
            listing = await response.text()
            assert response.content_type == "text/html"
        async with session.get(url + "subdir/") as response:
            assert await response.text() == "<p>index</p>"
        async with session.get(url + "hello.txt") as response:
            assert response.content_type == "text/plain"
            etag = response.headers["ETag"]
            modified = response.headers["Last-Modified"]
            assert await response.read() == b"hello, world\n"
        async with session.head(url + "hello.txt") as response:
            assert response.status == 200
            assert response.headers["Content-Length"] == "13"
            assert await response.read() == b""
        async with session.get(url + "hello.txt", headers={"Range": "bytes=7-11"}) as response:
            assert response.status == 206
            assert await response.read() == b"world"
        async with session.get(url + "hello.txt", headers={"If-None-Match": etag}) as response:
            assert response.status == 304
        async with session.get(url + "hello.txt", headers={"If-Modified-Since": modified}) as r:
            assert r.status == 304
        async with session.post(url + "hello.txt") as response:
            assert response.status == 405
    assert 'href="subdir/"' in listing
    assert 'href="hello.txt"' in listing
    assert ".env" not in listing


def test_static_root_must_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        StaticFiles(tmp_path / "missing")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_abandoned_big_download_frees_file_and_task(tmp_path: Path) -> None:
    """H8: a client reads 1 MiB of 100 MiB and resets: fd closed, no task left behind."""
    root = tmp_path / "root"
    root.mkdir()
    with open(root / "big.bin", "wb") as big:
        big.truncate(100 * 1024 * 1024)  # sparse: no disk I/O to speak of
    async with web_server(root, port=0) as server:
        before_fds = _open_fds()
        before_tasks = asyncio.all_tasks()
        reader, writer = await asyncio.open_connection(*server.address)
        sock = writer.get_extra_info("socket")
        writer.write(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        received = 0
        async with asyncio.timeout(10):
            while received < 1024 * 1024:
                chunk = await reader.read(65536)
                assert chunk
                received += len(chunk)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()  # linger 0: an RST, mid-transfer
        await writer.wait_closed()
        # The connection's tasks end once the server has let go of the file and socket.
        serving = asyncio.all_tasks() - before_tasks
        assert serving
        _, pending = await asyncio.wait(serving, timeout=10)
        assert not pending
        assert _open_fds() <= before_fds
        assert asyncio.all_tasks() <= before_tasks
        # and the server still serves
        async with asyncio.timeout(5):
            response = await raw_get(server.address[1], "/")
        assert response.status == 200


PIECES = [
    "..",
    ".",
    "%2e",
    "%2E",
    "%2f",
    "%5c",
    "\\",
    "/",
    "//",
    "%00",
    "%25",
    "%",
    "~",
    ".env",
    "outside",
    "secret.txt",
    "escape",
]
PIECES += ["escape-dir", "subdir", "hello.txt"]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(PIECES), max_size=12))
@pytest.mark.slow
def test_any_path_resolves_inside_the_root_or_fails_cleanly(site: Path, parts: list[str]) -> None:
    """H1, generalised: whatever the raw path, resolve() stays in the root or answers 4xx."""
    root = site.resolve()
    raw = "/" + "".join(parts)
    status = 200
    try:
        path = resolve(root, raw)
    except web.HTTPException as exc:
        status = exc.status
    if status == 200:
        assert path.is_relative_to(root)
        assert not any(p.startswith(".") for p in path.relative_to(root).parts)
    else:
        assert status in (400, 403, 404)


async def test_lifecycle_serve_forever_close_and_ipv6(site: Path) -> None:
    """WebServer has every server's lifecycle: serve_forever until close(); ::1 works too."""
    server = await web_server(site, port=0).start()
    serving = asyncio.create_task(server.serve_forever())
    async with asyncio.timeout(10):
        response = await raw_get(server.address[1], "/hello.txt")
        server.close()
        await serving
    assert response.body == b"hello, world\n"
    assert not server.is_serving
    if not can_bind_ipv6():
        pytest.skip("no IPv6 loopback")
    async with web_server(site, "::1", port=0) as v6:
        assert v6.url.startswith("http://[::1]:")
        reader, writer = await asyncio.open_connection("::1", v6.address[1])
        writer.write(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(5):
            raw = await reader.read()
        writer.close()
    assert raw.endswith(b"hello, world\n")
