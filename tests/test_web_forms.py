"""Forms: getfirst/getlist, the tutorial's form page, uploads, and the H6 limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from asyncnet.web import Form, WebServer, read_form, sanitise_filename, web_server

from .web_helpers import parse_response, raw_exchange, raw_response


@pytest.fixture
async def forms(tmp_path: Path) -> AsyncIterator[tuple[WebServer, Path, list[Form]]]:
    """A server whose /echo reads a form into ``seen``; uploads land in tmp/uploads."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    seen: list[Form] = []

    async def echo(request: web.Request) -> web.Response:
        form = await read_form(
            request, upload_dir=uploads, max_body=64 * 1024, max_fields=100, timeout=1.0
        )
        seen.append(form)
        return web.Response(text=repr(sorted(form)))

    app = web.Application(client_max_size=64 * 1024)
    app.router.add_post("/echo", echo)
    async with WebServer(app, port=0) as server:
        yield server, uploads, seen


async def test_getfirst_and_getlist_urlencoded_and_multipart(
    forms: tuple[WebServer, Path, list[Form]],
) -> None:
    server, uploads, seen = forms
    url = server.url + "echo"
    async with aiohttp.ClientSession() as session, asyncio.timeout(10):
        form_type = {"Content-Type": "application/x-www-form-urlencoded"}
        async with session.post(url, data="a=1&a=2&b=%3Cx%3E", headers=form_type) as response:
            assert response.status == 200
        multipart = aiohttp.FormData()
        multipart.add_field("a", "first")
        multipart.add_field("a", "second")
        multipart.add_field("doc", b"file body", filename="report.txt", content_type="text/plain")
        async with session.post(url, data=multipart) as response:
            assert response.status == 200
    encoded, parts = seen
    assert encoded.getfirst("a") == "1"
    assert encoded.getlist("a") == ["1", "2"]
    assert encoded.getfirst("b") == "<x>"
    assert encoded.getfirst("missing", "default") == "default"
    assert encoded.getlist("missing") == []
    assert parts.getlist("a") == ["first", "second"]
    upload = parts.getfirst("doc")
    assert upload.filename == "report.txt"
    assert upload.path.parent == uploads
    assert upload.path.read_bytes() == b"file body"
    assert upload.size == 9


def _multipart(filename: str, body: bytes = b"x", boundary: str = "BOUNDARY") -> bytes:
    return (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="f"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + body
        + f"\r\n--{boundary}--\r\n".encode()
    )


def _post(body: bytes, content_type: str, *, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + f"Content-Type: {content_type}\r\nContent-Length: {size}\r\n\r\n".encode()
        + body
    )


async def test_body_over_the_limit_is_refused_before_reading(
    forms: tuple[WebServer, Path, list[Form]],
) -> None:
    """H6: Content-Length over max_body: 413 at once, without the body being sent."""
    server, _, seen = forms
    head = _post(b"", "application/x-www-form-urlencoded", length=50 * 1024 * 1024)
    started = time.monotonic()
    async with asyncio.timeout(5):
        response = await raw_response(server.address[1], head)
    assert response.status == 413
    assert time.monotonic() - started < 2
    assert seen == []


async def test_too_many_fields(forms: tuple[WebServer, Path, list[Form]]) -> None:
    """H6: 10 000 fields are a 400."""
    server, _, seen = forms
    body = "&".join("f" for _ in range(10_000)).encode()
    assert len(body) < 64 * 1024
    async with asyncio.timeout(5):
        response = parse_response(
            await raw_exchange(server.address[1], _post(body, "application/x-www-form-urlencoded"))
        )
    assert response.status == 400
    assert seen == []


@pytest.mark.parametrize(
    "filename", ["../../x", "..\\..\\x", "/etc/passwd", ".bashrc", "a\x00b", "..", ""]
)
async def test_upload_names_are_sanitised(
    forms: tuple[WebServer, Path, list[Form]], tmp_path: Path, filename: str
) -> None:
    """H6: a hostile filename never becomes a path; the file lands in the upload dir."""
    server, uploads, seen = forms
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    body = _multipart(filename)
    async with asyncio.timeout(5):
        response = parse_response(
            await raw_exchange(
                server.address[1], _post(body, "multipart/form-data; boundary=BOUNDARY")
            )
        )
    if response.status == 400:  # a NUL in a multipart header is malformed, not renamed
        assert "\x00" in filename
        assert list(uploads.iterdir()) == []
        return
    assert response.status == 200
    [stored] = list(uploads.iterdir())
    assert not stored.name.startswith(".")
    assert "/" not in stored.name
    assert "\x00" not in stored.name
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert set(after) - set(before) == {stored.relative_to(tmp_path)}
    assert isinstance(seen[0].getfirst("f").filename, str)  # kept for display only


async def test_malformed_multipart_is_a_fast_400(
    forms: tuple[WebServer, Path, list[Form]],
) -> None:
    """H6: no closing boundary: 400 within a second, nothing stored."""
    server, uploads, seen = forms
    body = _multipart("a.txt", b"y" * 1000)[: -len(b"\r\n--BOUNDARY--\r\n")]
    started = time.monotonic()
    async with asyncio.timeout(5):
        response = parse_response(
            await raw_exchange(
                server.address[1], _post(body, "multipart/form-data; boundary=BOUNDARY")
            )
        )
    assert response.status == 400
    assert time.monotonic() - started < 1.5
    assert list(uploads.iterdir()) == []
    assert seen == []


@pytest.mark.slow
async def test_form_that_never_finishes_is_cut_off(
    forms: tuple[WebServer, Path, list[Form]],
) -> None:
    """H6: a body that stops arriving: 400 after the form timeout (1 s here)."""
    server, _uploads, _ = forms
    started = time.monotonic()
    data = _post(b"a=1&", "application/x-www-form-urlencoded", length=1000)
    response = await raw_response(server.address[1], data)
    assert response.status == 400
    assert 0.9 < time.monotonic() - started < 4


async def test_upload_over_file_limit_leaves_nothing(tmp_path: Path) -> None:
    """H6: a file over max_file_size: 413 and no partial file."""
    uploads = tmp_path / "u"
    uploads.mkdir()

    async def handler(request: web.Request) -> web.Response:
        await read_form(request, upload_dir=uploads, max_file_size=100)
        return web.Response(text="stored")

    app = web.Application()
    app.router.add_post("/echo", handler)
    async with WebServer(app, port=0) as server:
        body = _multipart("big.bin", b"z" * 5000)
        async with asyncio.timeout(5):
            response = parse_response(
                await raw_exchange(
                    server.address[1], _post(body, "multipart/form-data; boundary=BOUNDARY")
                )
            )
    assert response.status == 413
    assert list(uploads.iterdir()) == []


async def test_tutorial_form_page_echoes_escaped(tmp_path: Path) -> None:
    """The tutorial's form (subnum, reviewer, comments) and its escaped echo."""
    async with web_server(tmp_path, port=0) as server:
        async with aiohttp.ClientSession() as session, asyncio.timeout(10):
            async with session.get(server.url + "form") as response:
                page = await response.text()
            data = {"subnum": "42", "reviewer": "<script>alert(1)</script>", "comments": "a&b"}
            async with session.post(server.url + "form", data=data) as response:
                echo = await response.text()
    for name in ("subnum", "reviewer", "comments"):
        assert f'name="{name}"' in page
    assert "subnum=42" in echo
    assert "reviewer=&lt;script&gt;alert(1)&lt;/script&gt;" in echo
    assert "<script>" not in echo
    assert "comments=a&amp;b" in echo


@given(st.text())
def test_sanitised_names_are_plain(name: str) -> None:
    safe = sanitise_filename(name)
    assert safe
    assert "/" not in safe
    assert "\\" not in safe
    assert not safe.startswith(".")
    assert len(safe) <= 100
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in safe)


async def test_chunked_multipart_over_max_body_is_refused(
    forms: tuple[WebServer, Path, list[Form]],
) -> None:
    """H6: no Content-Length (chunked): max_body still holds across all parts; nothing kept."""
    server, uploads, seen = forms
    parts = (
        b"".join(
            _multipart(f"f{i}.bin", b"q" * 20_000, boundary="B")[: -len(b"--B--\r\n")]
            for i in range(5)
        )
        + b"--B--\r\n"
    )
    chunked = (
        b"".join(
            b"%x\r\n%s\r\n" % (len(parts[i : i + 8192]), parts[i : i + 8192])
            for i in range(0, len(parts), 8192)
        )
        + b"0\r\n\r\n"
    )
    head = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: multipart/form-data; boundary=B\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    response = await raw_response(server.address[1], head + chunked)
    assert response.status == 413
    assert list(uploads.iterdir()) == []
    assert seen == []
