"""The static server and debug pages against a hostile peer and a changing disk.

Debug pages only for a loopback Host (DNS rebinding, H7); If-Range and multi-range
requests answered as RFC 9110 (and nginx) do; any file name listed and served; a
file that shrinks while it is sent ends the connection instead of desynchronising
it; malformed requests logged in one rate-limited line (H4, H5).  Real servers on
127.0.0.1 port 0, aiohttp's client or raw sockets, nothing mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
from collections.abc import AsyncIterator
from email.utils import format_datetime, parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from asyncnet._httpguard import HostRule
from asyncnet.web import WebServer, error_middleware, site_app, web_server
from asyncnet.web._ranges import if_range_holds, select_ranges

from .web_helpers import RawResponse, parse_response, raw_exchange, raw_get

pytestmark = pytest.mark.timeout(30)


async def _request(port: int, head: str) -> RawResponse:
    """One raw request (``head`` without the blank line), read until the server closes."""
    data = head.replace("\n", "\r\n").encode("latin-1") + b"Connection: close\r\n\r\n"
    return parse_response(await raw_exchange(port, data))


# -- debug pages and the Host header -----------------------------------------------------


async def test_debug_page_is_withheld_from_a_foreign_host_header(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """H7: a DNS-rebinding page reaches 127.0.0.1 with its own name in Host: plain 500."""
    caplog.set_level(logging.INFO, logger="asyncnet.web")
    async with web_server(tmp_path, port=0, debug=True) as server:
        port = server.address[1]
        foreign = [
            "evil.example",
            f"evil.example:{port}",
            f"127.0.0.1.evil.example:{port}",
            f"localhost.evil.example:{port}",
            f"localhost%2e:{port}",
            "",
        ]
        for host in foreign:
            response = await _request(port, f"GET /debug/crash HTTP/1.1\nHost: {host}\n")
            assert response.status == 500, host
            assert "Traceback" not in response.text, host
            assert "error id" in response.text, host
        no_host = parse_response(await raw_exchange(port, b"GET /debug/crash HTTP/1.0\r\n\r\n"))
        assert no_host.status == 500
        assert "Traceback" not in no_host.text
        for host in (f"127.0.0.1:{port}", f"LOCALHOST:{port}", "localhost", "127.0.0.2"):
            response = await _request(port, f"GET /debug/crash HTTP/1.1\nHost: {host}\n")
            assert response.status == 500
            assert "Traceback" in response.text, host
    withheld = [r for r in caplog.records if "debug page withheld" in r.getMessage()]
    assert len(withheld) == 1  # seven refusals, one rate-limited line
    assert "evil.example" in withheld[0].getMessage()


async def test_debug_page_host_allow_list() -> None:
    """H7: a name the developer lists (a reverse proxy's, say) may see the debug page."""

    async def crash(request: web.Request) -> web.Response:
        raise ValueError("deliberate")

    app = web.Application(middlewares=[error_middleware(debug=True, debug_hosts=["Dev.Test"])])
    app.router.add_get("/crash", crash)
    async with WebServer(app, port=0, debug=True) as server:
        port = server.address[1]
        listed = await _request(port, f"GET /crash HTTP/1.1\nHost: dev.test:{port}\n")
        other = await _request(port, f"GET /crash HTTP/1.1\nHost: other.test:{port}\n")
    assert "Traceback" in listed.text
    assert "Traceback" not in other.text
    site = site_app(".", debug=True, debug_hosts=["dev.test"])
    assert site is not None


def test_host_rule_parses_host_headers_strictly() -> None:
    """The one Host rule: loopback names and addresses, listed names; the port if bound."""
    anywhere = HostRule(["dev.test"])
    for ok in ("localhost", "LOCALHOST:80", "127.0.0.1:1", "[::1]:8000", "[::1]", "dev.test:9"):
        assert anywhere.allows(ok), ok
    for bad in (
        "",
        "evil.example",
        "::1",
        "[::1",
        "localhost:",
        "localhost:99999",
        "localhost:8x",
        "localhost%00",
        "localhost evil",
        "localhost.",
        "[fe80::1%25eth0]",
        "127.0.0.1@evil.example",
    ):
        assert not anywhere.allows(bad), bad
    bound = HostRule(["192.0.2.1"], port=8000)
    assert bound.allows("192.0.2.1:8000")
    assert bound.allows("localhost:8000")
    assert not bound.allows("localhost:8001")
    assert not bound.allows("localhost")  # port 80 by default
    assert HostRule(port=80).allows("localhost")


# -- If-Range and multiple ranges ----------------------------------------------------------

DATA = bytes(range(256)) * 4


@pytest.fixture
async def ranged(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    root = tmp_path / "root"
    root.mkdir()
    (root / "data.bin").write_bytes(DATA)
    async with web_server(root, port=0, form=False) as server:
        yield server.url + "data.bin", root / "data.bin"


@pytest.mark.all_loops
async def test_if_range_needs_a_strong_etag_or_the_exact_date(
    ranged: tuple[str, Path],
) -> None:
    """A resumed download of a changed file must restart (200), never splice (206)."""
    url, path = ranged
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as first:
            etag = first.headers["ETag"]
            modified = first.headers["Last-Modified"]
            assert first.headers["Accept-Ranges"] == "bytes"

        async def fetch(if_range: str) -> tuple[int, bytes]:
            headers = {"Range": "bytes=10-19", "If-Range": if_range}
            async with session.get(url, headers=headers) as response:
                return response.status, await response.read()

        assert await fetch(etag) == (206, DATA[10:20])
        assert await fetch(modified) == (206, DATA[10:20])
        assert await fetch('"not-the-etag"') == (200, DATA)
        assert await fetch("W/" + etag) == (200, DATA)  # weak: never for ranges
        later = format_datetime(parsedate_to_datetime(modified).replace(year=2099), usegmt=True)
        assert await fetch(later) == (200, DATA)  # a date must match exactly
        assert await fetch("yesterday") == (200, DATA)
        changed = b"new" + DATA[3:]
        path.write_bytes(changed)
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
        assert await fetch(etag) == (200, changed)
        assert await fetch(modified) == (200, changed)


async def _parts(response: aiohttp.ClientResponse) -> list[tuple[str, str, bytes]]:
    """(Content-Type, Content-Range, body) of each part of a multipart/byteranges body."""
    reader = aiohttp.MultipartReader.from_response(response)
    parts = []
    while (part := await reader.next()) is not None:
        assert isinstance(part, aiohttp.BodyPartReader)
        body = await part.read()
        parts.append((part.headers["Content-Type"], part.headers["Content-Range"], bytes(body)))
    return parts


@pytest.mark.all_loops
async def test_multiple_ranges_are_multipart_byteranges(ranged: tuple[str, Path]) -> None:
    """RFC 9110 14.6: bytes=0-1,4-5 is one 206 with two parts, not a 416."""
    url, _ = ranged
    size = len(DATA)
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Range": "bytes=0-1,4-5"}) as response:
            assert response.status == 206, await response.read()
            assert response.content_type == "multipart/byteranges"
            assert "Content-Range" not in response.headers
            length = int(response.headers["Content-Length"])
            raw = await response.read()
            assert len(raw) == length
        async with session.get(url, headers={"Range": "bytes=0-1,4-5"}) as response:
            parts = await _parts(response)
        assert parts == [
            ("application/octet-stream", f"bytes 0-1/{size}", DATA[0:2]),
            ("application/octet-stream", f"bytes 4-5/{size}", DATA[4:6]),
        ]
        # Sorted, suffix ranges resolved, an unsatisfiable range dropped.
        headers = {"Range": "bytes=-3, 100-101 ,5000-6000,0-0"}
        async with session.get(url, headers=headers) as response:
            assert response.status == 206
            parts = await _parts(response)
        assert [p[1:] for p in parts] == [
            (f"bytes 0-0/{size}", DATA[0:1]),
            (f"bytes 100-101/{size}", DATA[100:102]),
            (f"bytes {size - 3}-{size - 1}/{size}", DATA[-3:]),
        ]
        # Sixteen ranges are served; seventeen are an abuse, answered with the file.
        sixteen = ",".join(f"{i * 10}-{i * 10}" for i in range(16))
        async with session.get(url, headers={"Range": "bytes=" + sixteen}) as response:
            assert response.status == 206
            assert [p[2] for p in await _parts(response)] == [
                DATA[i * 10 : i * 10 + 1] for i in range(16)
            ]
        async with session.get(url, headers={"Range": f"bytes={sixteen},200-200"}) as response:
            assert response.status == 200
            assert await response.read() == DATA


@pytest.mark.parametrize(
    ("spec", "content_range", "start", "end"),
    [
        ("bytes=0-3,2-5", "bytes 0-5/1024", 0, 6),  # overlapping
        ("bytes=0-1,2-3", "bytes 0-3/1024", 0, 4),  # adjacent
        ("bytes=" + ",".join(["0-"] * 16), "bytes 0-1023/1024", 0, 1024),  # the same, 16 times
        ("bytes=0-1,5000-6000", "bytes 0-1/1024", 0, 2),  # one satisfiable
        ("bytes=-5000", "bytes 0-1023/1024", 0, 1024),
    ],
)
async def test_ranges_that_merge_to_one_are_a_plain_206(
    ranged: tuple[str, Path], spec: str, content_range: str, start: int, end: int
) -> None:
    url, _ = ranged
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Range": spec}) as response:
            assert response.status == 206
            assert response.headers["Content-Range"] == content_range
            assert response.content_type == "application/octet-stream"
            assert await response.read() == DATA[start:end]


@pytest.mark.parametrize(
    ("spec", "status"),
    [
        ("bytes=5000-,6000-7000", 416),
        ("bytes=1024-", 416),
        ("bytes=5-2", 200),  # invalid: ignored, as RFC 9110 14.2 allows
        ("bytes=abc", 200),
        ("bytes=", 200),
        ("items=0-1", 200),  # another unit: must be ignored
    ],
)
async def test_unsatisfiable_and_invalid_ranges(
    ranged: tuple[str, Path], spec: str, status: int
) -> None:
    url, _ = ranged
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Range": spec}) as response:
            assert response.status == status, spec
            body = await response.read()
    if status == 416:
        assert response.headers["Content-Range"] == "bytes */1024"
    else:
        assert body == DATA


@given(
    st.lists(
        st.one_of(
            st.tuples(st.integers(0, 120), st.one_of(st.none(), st.integers(0, 120))),
            st.tuples(st.none(), st.integers(0, 120)),
        ),
        min_size=1,
        max_size=20,
    ),
    st.integers(0, 100),
)
@pytest.mark.slow
def test_select_ranges_covers_exactly_the_requested_bytes(
    specs: list[tuple[int | None, int | None]], size: int
) -> None:
    """The merged ranges are sorted, disjoint, not adjacent, and cover what was asked."""
    texts = []
    wanted: set[int] = set()
    valid = True
    for first, last in specs:
        if first is None:
            assert last is not None
            texts.append(f"-{last}")
            wanted |= set(range(max(0, size - last), size))
        else:
            texts.append(f"{first}-" if last is None else f"{first}-{last}")
            if last is not None and last < first:
                valid = False
            wanted |= set(range(first, size if last is None else min(last + 1, size)))
    result = select_ranges("bytes=" + ",".join(texts), size, max_ranges=16)
    if not valid or len(specs) > 16:
        assert result is None
        return
    assert result is not None
    covered = [i for start, end in result for i in range(start, end + 1)]
    assert covered == sorted(wanted)
    for (_, end), (start, _) in itertools.pairwise(result):
        assert start > end + 1


def test_if_range_holds_only_for_a_strong_match() -> None:
    etag = '"17f-400"'
    assert if_range_holds('"17f-400"', etag=etag, last_modified=1_700_000_000)
    assert not if_range_holds('W/"17f-400"', etag=etag, last_modified=1_700_000_000)
    assert not if_range_holds('"17f-401"', etag=etag, last_modified=1_700_000_000)
    assert if_range_holds("Tue, 14 Nov 2023 22:13:20 GMT", etag=etag, last_modified=1_700_000_000)
    assert not if_range_holds(
        "Tue, 14 Nov 2023 22:13:21 GMT", etag=etag, last_modified=1_700_000_000
    )
    assert not if_range_holds("", etag=etag, last_modified=1_700_000_000)


# -- any file name -------------------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs += [v or "" for k, v in attrs if k == "href"]

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


async def test_names_that_are_not_utf8_are_listed_and_served(tmp_path: Path) -> None:
    """A Latin-1 file name (b'caf\\xe9.txt'): listed, escaped, linked from its bytes, served."""
    root = tmp_path / "root"
    root.mkdir()
    try:
        with open(os.path.join(os.fsencode(root), b"caf\xe9 <b>.txt"), "wb") as f:
            f.write(b"latin-1 name\n")
        os.mkdir(os.path.join(os.fsencode(root), b"dir\xff"))
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    with open(os.path.join(os.fsencode(root), b"dir\xff", b"inner.txt"), "wb") as f:
        f.write(b"inside\n")
    async with web_server(root, port=0) as server:
        port = server.address[1]
        listing = await raw_get(port, "/")
        served = await raw_get(port, "/caf%E9%20%3Cb%3E.txt")
        redirect = await raw_get(port, "/dir%FF")
        inner = await raw_get(port, "/dir%FF/")
        inner_file = await raw_get(port, "/dir%ff/inner.txt")
        wrong = await raw_get(port, "/caf%C3%A9%20%3Cb%3E.txt")  # the UTF-8 spelling: another name
    assert listing.status == 200, listing.text
    links = _Links()
    links.feed(listing.text)
    assert "caf%E9%20%3Cb%3E.txt" in links.hrefs
    assert "dir%FF/" in links.hrefs
    assert "caf\ufffd <b>.txt" in links.texts  # shown, undecodable byte replaced
    assert "<b>" not in listing.text
    assert served.status == 200
    assert served.body == b"latin-1 name\n"
    assert redirect.status == 301
    assert redirect.headers["location"] == "/dir%FF/"
    assert inner.status == 200
    assert "inner.txt" in inner.text
    assert inner_file.body == b"inside\n"
    assert wrong.status == 404


# -- a file that shrinks while it is sent ----------------------------------------------------

BIG = 32 * 1024 * 1024
CUT = 16 * 1024 * 1024  # far beyond what the socket buffers can hold (tcp_wmem max 4 MiB)


@pytest.mark.all_loops
async def test_a_file_truncated_while_sent_ends_the_connection(tmp_path: Path) -> None:
    """The body ends short: the connection must close, not answer the next request."""
    root = tmp_path / "root"
    root.mkdir()
    big = root / "big.bin"
    with open(big, "wb") as f:
        f.truncate(BIG)  # sparse
    (root / "small.txt").write_bytes(b"SMALL-MARKER")
    async with web_server(root, port=0, header_timeout=2) as server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.address[1]))
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            writer.write(
                b"GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                b"GET /small.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            )
            async with asyncio.timeout(10):
                head = parse_response(await reader.readuntil(b"\r\n\r\n"))
                assert head.status == 200
                assert int(head.headers["content-length"]) == BIG
                received = await reader.readexactly(64 * 1024)
                os.truncate(big, CUT)
                rest = bytearray(received)
                with contextlib.suppress(ConnectionResetError):
                    while chunk := await reader.read(1024 * 1024):
                        rest += chunk
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    assert b"SMALL-MARKER" not in rest, "the next response was sent after a short body"
    assert len(rest) <= CUT < BIG
    assert not rest.strip(b"\0")  # nothing but the file's bytes


@pytest.mark.all_loops
async def test_a_file_shrunk_before_sending_is_sent_as_it_is_now(tmp_path: Path) -> None:
    """No race in the ordinary case: what is on disk at open time is what is announced."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "f.txt").write_bytes(b"x" * 100)
    async with web_server(root, port=0) as server:
        (root / "f.txt").write_bytes(b"y" * 10)
        response = await raw_get(server.address[1], "/f.txt")
    assert response.body == b"y" * 10


# -- malformed requests in the log ---------------------------------------------------------

MALFORMED = [
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
]


async def test_malformed_requests_log_one_line_without_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """H4/H5: 200 bad requests were 1,800 log lines; now one rate-limited line, no traceback."""
    caplog.set_level(logging.DEBUG)
    async with web_server(tmp_path, port=0) as server:
        port = server.address[1]
        for index in range(40):
            raw = await raw_exchange(port, MALFORMED[index % len(MALFORMED)])
            assert parse_response(raw).status == 400, raw[:200]
        assert (await raw_get(port, "/")).status == 200
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "web server" in warnings[0].getMessage()
    assert "Content-Length" in warnings[0].getMessage()


async def test_a_server_bug_still_logs_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """Only the peer's errors lose their traceback: a handler that crashes keeps it."""
    caplog.set_level(logging.DEBUG)

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug in the handler")

    app = web.Application()
    app.router.add_get("/", broken)
    async with WebServer(app, port=0) as server:
        response = await raw_get(server.address[1], "/")
    assert response.status == 500
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.exc_info is not None
    assert "a bug in the handler" in str(record.exc_info[1])


# -- the same requests against nginx ---------------------------------------------------------


@pytest.mark.slow
async def test_ranges_and_if_range_answered_as_nginx_answers(tmp_path: Path) -> None:
    """Status, Content-Range and bytes of each answer match nginx's for the same file."""
    from .test_web_nginx import nginx

    async def answers(base: str) -> list[tuple[int, str | None, list[tuple[str, bytes]]]]:
        results = []
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "big.bin") as first:
                etag = first.headers["ETag"]
                modified = first.headers["Last-Modified"]
                await first.read()
            later = format_datetime(parsedate_to_datetime(modified).replace(year=2099), usegmt=True)
            cases = [
                {"Range": "bytes=10-19"},
                {"Range": "bytes=10-19", "If-Range": etag},
                {"Range": "bytes=10-19", "If-Range": '"other"'},
                {"Range": "bytes=10-19", "If-Range": "W/" + etag},
                {"Range": "bytes=10-19", "If-Range": modified},
                {"Range": "bytes=10-19", "If-Range": later},
                {"Range": "bytes=0-1,4-5"},
                {"Range": "bytes=0-1,4-5", "If-Range": etag},
                {"Range": "bytes=0-1,4-5", "If-Range": '"other"'},
                {"Range": "bytes=100-101,-3"},  # (nginx keeps the order; we sort)
                {"Range": "bytes=2000000-"},
                {"Range": "bytes=-0"},
            ]
            for headers in cases:
                async with session.get(base + "big.bin", headers=headers) as response:
                    if response.content_type == "multipart/byteranges":
                        parts = [(p[1], p[2]) for p in await _parts(response)]
                    elif response.status < 300:
                        parts = [("", await response.read())]
                    else:
                        parts = []  # each server words its error page its own way
                    results.append((response.status, response.headers.get("Content-Range"), parts))
        return results

    (tmp_path / "nginx").mkdir()
    async with nginx(tmp_path / "nginx") as reference:
        expected = await answers(reference)
    root = tmp_path / "nginx" / "www"
    async with web_server(root, port=0, form=False) as server:
        got = await answers(server.url)
    statuses = [status for status, _, _ in expected]
    assert statuses == [206, 206, 200, 200, 206, 200, 206, 206, 200, 206, 416, 416]
    assert got == expected


def test_debug_host_option_needs_debug_and_a_host_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo's --debug-host: a usage error without --debug, one line for a bad name."""
    from asyncnet.demos import web as web_demo

    assert web_demo.main([str(tmp_path), "--debug-host", "dev.test", "--port", "0"]) == 2
    alone = capsys.readouterr().err
    assert alone.count("\n") == 1
    assert "--debug" in alone
    bad = ["--debug", "--debug-host", "dev.test:8000", "--port", "0", str(tmp_path)]
    assert web_demo.main(bad) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "without a port" in error
    assert "Traceback" not in error


@pytest.mark.all_loops
async def test_what_file_response_did_still_holds(tmp_path: Path) -> None:
    """Pre-compressed siblings, If-Match / If-Unmodified-Since, HEAD, empty files."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "page.txt").write_bytes(b"plain text\n")
    (root / "page.txt.gz").write_bytes(b"GZIP-BYTES")
    (root / "empty.txt").write_bytes(b"")
    async with web_server(root, port=0, form=False) as server:
        port = server.address[1]
        gzipped = await raw_get(port, "/page.txt", "Accept-Encoding: gzip, br\r\n")
        refused = await raw_get(port, "/page.txt", "Accept-Encoding: br;q=0, gzip;q=0\r\n")
        ranged = await raw_get(port, "/page.txt", "Accept-Encoding: gzip\r\nRange: bytes=0-3\r\n")
        etag = (await raw_get(port, "/page.txt")).headers["etag"]
        matched = await raw_get(port, "/page.txt", f"If-Match: {etag}\r\n")
        unmatched = await raw_get(port, "/page.txt", 'If-Match: "other"\r\n')
        old = await raw_get(
            port, "/page.txt", "If-Unmodified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n"
        )
        head = parse_response(
            await raw_exchange(
                port,
                b"HEAD /page.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=0-1,4-5\r\n"
                b"Connection: close\r\n\r\n",
            )
        )
        empty = await raw_get(port, "/empty.txt")
        empty_range = await raw_get(port, "/empty.txt", "Range: bytes=0-\r\n")
    assert gzipped.headers["content-encoding"] == "gzip"
    assert gzipped.headers["vary"] == "Accept-Encoding"
    assert gzipped.headers["content-type"] == "text/plain"
    assert gzipped.body == b"GZIP-BYTES"
    assert "content-encoding" not in refused.headers
    assert refused.body == b"plain text\n"
    assert (ranged.status, ranged.body) == (206, b"GZIP")
    assert (matched.status, matched.body) == (200, b"plain text\n")
    assert unmatched.status == 412
    assert old.status == 412
    assert head.status == 206
    assert head.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert int(head.headers["content-length"]) > 4
    assert head.body == b""
    assert (empty.status, empty.headers["content-length"], empty.body) == (200, "0", b"")
    assert empty_range.status == 416
