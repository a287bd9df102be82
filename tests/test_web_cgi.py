"""The CGI runner: the tutorial's sample script, RFC 3875 environment, limits, no shell."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncnet.web import WebServer, web_server
from asyncnet.web._cgi import CGIError, parse_cgi_headers

from .helpers import ROOT, process_exited
from .web_helpers import raw_get

SAMPLE = ROOT / "asyncnet" / "demos" / "site" / "cgi-bin" / "sample.py"


def script(directory: Path, name: str, body: str, *, mode: int = 0o755) -> Path:
    """Write an executable Python CGI script (this interpreter in its #! line)."""
    path = directory / name
    path.write_text(f"#!{sys.executable}\nimport os, sys, time\n{body}\n")
    path.chmod(mode)
    return path


@pytest.fixture
def cgi_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    bin_dir = root / "cgi-bin"
    bin_dir.mkdir(parents=True)
    shutil.copy(SAMPLE, bin_dir / "sample.py")
    (bin_dir / "sample.py").chmod(0o755)
    script(
        bin_dir,
        "env.py",
        'data = sys.stdin.buffer.read(int(os.environ.get("CONTENT_LENGTH") or 0))\n'
        'print("Content-Type: text/plain\\n")\n'
        "for k in sorted(os.environ): print(f'{k}={os.environ[k]}')\n"
        "print('STDIN=' + data.decode())",
    )
    script(bin_dir, "status.py", 'print("Status: 404 Nope\\nContent-Type: text/plain\\n\\ngone")')
    script(bin_dir, "redirect.py", 'print("Location: /elsewhere\\n")')
    script(bin_dir, "noheaders.py", 'print("just text, no headers at all")')
    script(bin_dir, "slow.py", 'time.sleep(30)\nprint("Content-Type: text/plain\\n\\nlate")')
    script(
        bin_dir,
        "pid.py",
        'sys.stdout.write(f"Content-Type: text/plain\\nX-Pid: {os.getpid()}\\n\\nstarted\\n")\n'
        "sys.stdout.flush()\ntime.sleep(30)",
    )
    script(
        bin_dir,
        "flood.py",
        'sys.stdout.write(f"Content-Type: text/plain\\nX-Pid: {os.getpid()}\\n\\n")\n'
        "while True: sys.stdout.write('x' * 65536)",
    )
    script(
        bin_dir,
        "split.py",
        'sys.stdout.write("Content-Type: text/plain\\n\\n"); sys.stdout.flush()\n'
        "time.sleep(0.1); print('the body, written after the headers')",
    )
    script(bin_dir, "noexec.py", 'print("Content-Type: text/plain\\n\\nran")', mode=0o644)
    (bin_dir / "subdir").mkdir()
    outside = tmp_path / "outside.py"
    script(tmp_path, "outside.py", 'print("Content-Type: text/plain\\n\\nESCAPED")')
    (bin_dir / "link.py").symlink_to(outside)
    return root


@pytest.fixture
async def server(cgi_root: Path) -> AsyncIterator[WebServer]:
    options = {"time_limit": 1.0, "max_output": 256 * 1024}
    async with web_server(cgi_root, port=0, cgi=True, cgi_options=options) as server:
        yield server


async def test_tutorial_sample_script_runs_unchanged(server: WebServer) -> None:
    """The tutorial's sample CGI script (ported to Python 3): GET and POST, values escaped."""
    url = server.url + "cgi-bin/sample.py"
    async with aiohttp.ClientSession() as session, asyncio.timeout(10):
        async with session.get(url, params={"subnum": "7", "reviewer": "<b>Steve</b>"}) as r:
            assert r.status == 200
            assert r.content_type == "text/html"
            by_get = await r.text()
        data = {"subnum": "42", "reviewer": "me", "comments": "a & b"}
        async with session.post(url, data=data) as r:
            by_post = await r.text()
    assert "subnum=7<br>reviewer=&lt;b&gt;Steve&lt;/b&gt;<br>comments=None" in by_get
    assert "subnum=42<br>reviewer=me<br>comments=a &amp; b" in by_post
    assert "<title>Hello!</title>" in by_post


async def test_rfc3875_environment_and_stdin(
    server: WebServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASYNCNET_TEST_SECRET", "do-not-leak")
    url = server.url + "cgi-bin/env.py/extra/path?q=1&r=%3B%20rm%20-rf"
    headers = {"X-Custom": "yes", "Proxy": "http://192.0.2.1:3128"}
    async with aiohttp.ClientSession() as session, asyncio.timeout(10):
        async with session.post(url, data=b"body bytes", headers=headers) as response:
            text = await response.text()
    env = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/cgi-bin/env.py"
    assert env["PATH_INFO"] == "/extra/path"
    assert env["QUERY_STRING"] == "q=1&r=%3B%20rm%20-rf"
    assert env["CONTENT_LENGTH"] == "10"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(server.address[1])
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["HTTP_X_CUSTOM"] == "yes"
    assert env["STDIN"] == "body bytes"
    assert "HTTP_PROXY" not in env  # httpoxy
    assert "ASYNCNET_TEST_SECRET" not in env  # nothing from the server's environment


async def test_status_location_and_bad_output(server: WebServer) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(10):
        async with session.get(server.url + "cgi-bin/status.py") as r:
            assert (r.status, r.reason, await r.text()) == (404, "Nope", "gone\n")
        async with session.get(server.url + "cgi-bin/redirect.py", allow_redirects=False) as r:
            assert r.status == 302
            assert r.headers["Location"] == "/elsewhere"
        async with session.get(server.url + "cgi-bin/split.py") as r:
            assert await r.text() == "the body, written after the headers\n"
        async with session.get(server.url + "cgi-bin/noheaders.py") as r:
            assert r.status == 502


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/cgi-bin/noexec.py", 403),
        ("/cgi-bin/link.py", 404),  # a symlink out of cgi-bin
        ("/cgi-bin/subdir", 404),
        ("/cgi-bin/missing.py", 404),
        ("/cgi-bin/..%2foutside.py", 404),
        ("/cgi-bin/../outside.py", 404),
        ("/cgi-bin/.hidden", 404),
        ("/cgi-bin/sample.py;id", 404),
        ("/cgi-bin/%60id%60", 404),
    ],
)
async def test_only_executables_inside_cgi_bin_run(
    server: WebServer, path: str, status: int
) -> None:
    async with asyncio.timeout(5):
        response = await raw_get(server.address[1], path)
    assert response.status == status
    assert b"ESCAPED" not in response.raw
    assert b"ran" not in response.body


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
async def test_time_limit_kills_the_script(server: WebServer) -> None:
    async with asyncio.timeout(10):
        response = await raw_get(server.address[1], "/cgi-bin/slow.py")
    assert response.status == 504


async def test_output_limit_kills_the_script_and_truncates(server: WebServer) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(10):
        async with session.get(server.url + "cgi-bin/flood.py") as response:
            pid = int(response.headers["X-Pid"])
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()  # never a complete-looking body
    await process_exited(pid, timeout=5)


async def test_script_is_killed_when_the_client_goes_away(server: WebServer) -> None:
    reader, writer = await asyncio.open_connection(*server.address)
    writer.write(b"GET /cgi-bin/pid.py HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    pid = int(head.split(b"X-Pid: ")[1].split(b"\r\n")[0])
    assert _alive(pid)
    writer.close()
    await process_exited(pid, timeout=5)  # well before its 30 s sleep ends


def test_parse_cgi_headers() -> None:
    assert parse_cgi_headers(b"Content-Type: text/plain\r\nX-A: 1") == (
        200,
        "OK",
        [("Content-Type", "text/plain"), ("X-A", "1")],
    )
    assert parse_cgi_headers(b"Status: 201 Made\nContent-Type: a/b")[:2] == (201, "Made")
    assert parse_cgi_headers(b"Location: /x")[:2] == (302, "Found")
    for bad in (b"no colon", b"Status: abc\nContent-Type: a/b", b"X-Only: 1", b"Bad Name: 1"):
        with pytest.raises(CGIError):
            parse_cgi_headers(bad)


@given(
    head=st.sampled_from([b"Content-Type: text/plain", b"Status: 200 OK\r\nContent-Type: a/b"]),
    separator=st.sampled_from([b"\n\n", b"\r\n\r\n"]),
    body=st.lists(st.sampled_from([b"x", b"\n", b"\r\n", b"\n\n", b"\r\n\r\n"])).map(b"".join),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=6),
)
def test_header_block_is_found_across_any_split(
    head: bytes, separator: bytes, body: bytes, cuts: list[int]
) -> None:
    """The script's output split anywhere: the same header block and body start."""
    from asyncnet.web._cgi import _read_head

    output = head + separator + body
    points = sorted({min(c, len(output)) for c in cuts})
    pieces = [output[a:b] for a, b in zip([0, *points], [*points, len(output)], strict=True)]

    async def scenario() -> tuple[bytes, bytes] | None:
        reader = asyncio.StreamReader()

        async def feed() -> None:
            for piece in pieces:  # one piece per turn of the loop: each can be a read
                reader.feed_data(piece)
                await asyncio.sleep(0)
            reader.feed_eof()

        feeder = asyncio.create_task(feed())
        found = await _read_head(reader)
        rest = await reader.read()
        await feeder
        if found is None:
            return None
        return found[0], found[1] + rest

    assert asyncio.run(scenario()) == (head, body)
