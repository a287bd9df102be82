"""CGI against a hostile client and misbehaving scripts: source never served, PATH_INFO
kept inside the root, scripts that exit at once, bounded concurrency, process groups,
header names with ``_``, folded script headers."""

from __future__ import annotations

import asyncio
import collections
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from asyncnet.web import CGIRunner, WebServer, web_server
from asyncnet.web._cgi import CGIError, parse_cgi_headers

from .helpers import process_exited
from .web_helpers import RawResponse, parse_response, raw_exchange, raw_get

SOURCE_MARK = b"import os, sys, time"
"""A line of every Python test script's source, never of its output."""


def script(directory: Path, name: str, body: str) -> Path:
    """Write an executable Python CGI script (this interpreter in its #! line)."""
    path = directory / name
    path.write_text(f"#!{sys.executable}\nimport os, sys, time\n{body}\n")
    path.chmod(0o755)
    return path


def env_of(response: RawResponse) -> dict[str, str]:
    """The ``NAME=value`` lines an env-printing script wrote (chunk sizes dropped)."""
    return dict(line.split("=", 1) for line in response.text.splitlines() if "=" in line)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    bin_dir = root / "cgi-bin"
    bin_dir.mkdir(parents=True)
    (root / "index.html").write_text("<p>home</p>\n")
    (root / "cgi-bin-notes.txt").write_text("notes, not a script\n")
    script(
        bin_dir,
        "env.py",
        'print("Content-Type: text/plain\\n")\n'
        "for k in sorted(os.environ): print(f'{k}={os.environ[k]}')",
    )
    quick = bin_dir / "quick"  # a shell script: exits long before Python would start
    quick.write_text("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nquick\\n'\n")
    quick.chmod(0o755)
    script(
        bin_dir,
        "hold.py",
        'sys.stdout.write(f"Content-Type: text/plain\\nX-Pid: {os.getpid()}\\n\\nheld\\n")\n'
        "sys.stdout.flush()\ntime.sleep(30)",
    )
    script(
        bin_dir,
        "daemon.py",  # the script exits; its child keeps the script's stdout open
        "child = os.fork()\n"
        "if child == 0:\n    time.sleep(30)\n    os._exit(0)\n"
        'sys.stdout.write(f"Content-Type: text/plain\\nX-Child: {child}\\n\\nstarted\\n")',
    )
    script(
        bin_dir,
        "detach.py",
        # A background child with its output elsewhere, and a second one that ends the
        # output a little after the script itself has exited (and been reaped).
        "child = os.fork()\n"
        "if child == 0:\n"
        "    null = os.open(os.devnull, os.O_RDWR)\n"
        "    for fd in (0, 1, 2): os.dup2(null, fd)\n"
        "    time.sleep(30)\n    os._exit(0)\n"
        'sys.stdout.write(f"Content-Type: text/plain\\nX-Child: {child}\\n\\nstarted\\n")\n'
        "sys.stdout.flush()\n"
        "if os.fork() == 0:\n    time.sleep(0.3)\n    os._exit(0)",
    )
    script(
        bin_dir,
        "folded.py",
        'sys.stdout.write("Content-Type: text/plain\\nX-Long: one\\n X-Injected: yes\\n\\nbody")',
    )
    (root / "scripts").symlink_to(bin_dir)  # another spelling of the directory
    return root


@pytest.fixture
async def server(site: Path) -> AsyncIterator[WebServer]:
    options = {"time_limit": 1.0}
    async with web_server(site, port=0, cgi=True, cgi_options=options) as server:
        yield server


# Source disclosure through the static route ---------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "//cgi-bin/env.py",
        "//cgi-bin/",
        "//cgi-bin",
        "///cgi-bin/env.py",
        "/./cgi-bin/env.py",
        "/%2e/cgi-bin/env.py",
        "/%2E/cgi-bin/env.py",
        "/x/../cgi-bin/env.py",
        "/cgi-bin//env.py",
        "/cgi-bin%2fenv.py",
        "/%2fcgi-bin/env.py",
        "/CGI-BIN/env.py",
        "/cgi-bin",
        "/scripts/env.py",  # a symlink to the CGI directory
        "/scripts/",
        "//scripts/env.py",
    ],
)
async def test_static_route_never_serves_the_cgi_directory(server: WebServer, path: str) -> None:
    """Whatever the spelling, a script's source and the CGI folder's listing stay private."""
    async with asyncio.timeout(10):
        response = await raw_get(server.address[1], path)
    assert SOURCE_MARK not in response.raw
    assert b"Directory listing" not in response.raw
    assert response.status in (200, 400, 404), response.raw[:200]
    if response.status == 200:  # only as the script itself, run through CGI
        assert env_of(response)["SCRIPT_NAME"] == "/cgi-bin/env.py"


async def test_static_files_beside_the_cgi_directory_are_still_served(
    server: WebServer,
) -> None:
    async with asyncio.timeout(10):
        index = await raw_get(server.address[1], "/")
        notes = await raw_get(server.address[1], "/cgi-bin-notes.txt")
        ran = await raw_get(server.address[1], "/cgi-bin/env.py")
    assert (index.status, index.body) == (200, b"<p>home</p>\n")
    assert (notes.status, notes.body) == (200, b"notes, not a script\n")
    assert ran.status == 200
    assert env_of(ran)["GATEWAY_INTERFACE"] == "CGI/1.1"


async def test_cgi_off_serves_the_folder_as_plain_files(site: Path) -> None:
    """Without cgi=True the folder is ordinary content: nothing is hidden or run."""
    async with web_server(site, port=0) as server, asyncio.timeout(10):
        response = await raw_get(server.address[1], "/cgi-bin/env.py")
    assert response.status == 200
    assert SOURCE_MARK in response.body


# PATH_INFO and PATH_TRANSLATED ----------------------------------------------------


@pytest.mark.parametrize(
    ("tail", "status"),
    [
        ("/%2e%2e/outside.txt", 404),
        ("/%2E%2E/outside.txt", 404),
        ("/..", 404),
        ("/../outside.txt", 404),
        ("/a/%2e%2e/%2e%2e/outside.txt", 404),
        ("/a/../../outside.txt", 404),
        ("/a%2f..%2f..%2foutside.txt", 404),  # an encoded slash is never a separator
        ("/%00", 400),
        ("/a%01b", 400),
        ("/a%7f", 400),
        ("/a%0ab", 404),  # no route matches a decoded newline
    ],
)
async def test_path_info_cannot_leave_the_root(server: WebServer, tail: str, status: int) -> None:
    async with asyncio.timeout(10):
        response = await raw_get(server.address[1], "/cgi-bin/env.py" + tail)
    assert response.status == status, response.raw[:300]
    assert b"PATH_TRANSLATED" not in response.body


@pytest.mark.parametrize(
    ("tail", "path_info"),
    [
        ("", None),
        ("/", "/"),
        ("/extra/path", "/extra/path"),
        ("/a/./b/../c", "/a/c"),
        ("/a/%2e/b/%2e%2e/c", "/a/c"),
        ("/a/b/..", "/a/"),
        ("/a/..", "/"),
        ("//x//y/", "/x/y/"),
        ("/a%20b/caf%C3%A9", "/a b/café"),
    ],
)
async def test_path_info_is_decoded_and_normalised(
    server: WebServer, site: Path, tail: str, path_info: str | None
) -> None:
    """RFC 3875 4.1.5/4.1.6: decoded, dot segments applied; PATH_TRANSLATED under the root."""
    async with asyncio.timeout(10):
        response = await raw_get(server.address[1], "/cgi-bin/env.py" + tail + "?q=%2e%2e")
    assert response.status == 200
    env = env_of(response)
    assert env["QUERY_STRING"] == "q=%2e%2e"  # the query stays as sent
    if path_info is None:
        assert "PATH_TRANSLATED" not in env
        assert env["PATH_INFO"] == ""
        return
    assert env["PATH_INFO"] == path_info
    assert env["PATH_TRANSLATED"] == str(site.resolve()) + path_info


@pytest.mark.parametrize(
    ("target", "status", "path_info"),
    [
        ("http://127.0.0.1/cgi-bin/env.py/x/./y", 200, "/x/y"),
        ("http://127.0.0.1/cgi-bin/env.py/%2e%2e/outside.txt", 404, None),
        ("http://127.0.0.1/cgi-bin/env.py/a/../../outside.txt", 404, None),
    ],
)
async def test_absolute_form_target_gets_the_same_path_info(
    server: WebServer, target: str, status: int, path_info: str | None
) -> None:
    """RFC 9112 3.2.2: a request target with scheme and host names the same script."""
    async with asyncio.timeout(10):
        response = await raw_get(server.address[1], target)
    assert response.status == status, response.raw[:300]
    if path_info is not None:
        assert env_of(response)["PATH_INFO"] == path_info


async def test_path_translated_is_under_the_document_root_not_the_scripts_parent(
    site: Path, tmp_path: Path
) -> None:
    """A cgi_dir elsewhere: PATH_TRANSLATED still maps PATH_INFO through the served root."""
    elsewhere = tmp_path / "elsewhere" / "bin"
    elsewhere.mkdir(parents=True)
    (site / "cgi-bin" / "env.py").rename(elsewhere / "env.py")
    async with web_server(site, port=0, cgi=True, cgi_dir=elsewhere) as server:
        async with asyncio.timeout(10):
            response = await raw_get(server.address[1], "/cgi-bin/env.py/docs/a.txt")
    assert env_of(response)["PATH_TRANSLATED"] == str(site.resolve() / "docs" / "a.txt")


# Request header names -------------------------------------------------------------


async def test_header_names_with_underscores_are_not_passed(server: WebServer) -> None:
    """``X_Foo`` would otherwise land in HTTP_X_FOO beside ``X-Foo`` (Apache and nginx
    drop such names); the dashed header alone reaches the script."""
    async with asyncio.timeout(10):
        response = await raw_get(
            server.address[1], "/cgi-bin/env.py", "X_Foo: forged\r\nX-Foo: real\r\nX_Only: 1\r\n"
        )
    env = env_of(response)
    assert env["HTTP_X_FOO"] == "real"
    assert "HTTP_X_ONLY" not in env
    assert b"forged" not in response.body


# The script's response headers ----------------------------------------------------


def test_parse_cgi_headers_refuses_obs_fold() -> None:
    for folded in (
        b"Content-Type: text/plain\n X-Injected: yes",
        b"Content-Type: text/plain\r\n\tX-Injected: yes",
        b"X-Long: one\n  two\nContent-Type: text/plain",
        b" Content-Type: text/plain",
    ):
        with pytest.raises(CGIError, match="folded"):
            parse_cgi_headers(folded)
    with pytest.raises(CGIError):
        parse_cgi_headers(b"Content-Type: text/plain\nX(bad): 1")
    assert parse_cgi_headers(b"Content-Type: text/plain\nX-A:\tvalue ")[2] == [
        ("Content-Type", "text/plain"),
        ("X-A", "value"),
    ]


async def test_folded_script_header_is_a_bad_gateway(server: WebServer) -> None:
    """A continuation line must not become a response header of its own."""
    async with asyncio.timeout(10):
        response = await raw_get(server.address[1], "/cgi-bin/folded.py")
    assert response.status == 502
    assert "x-injected" not in response.headers
    assert b"X-Injected" not in response.raw


# Scripts that exit at once --------------------------------------------------------


@pytest.mark.all_loops
@pytest.mark.timeout(120)
@pytest.mark.slow
async def test_script_that_exits_without_reading_its_input(server: WebServer) -> None:
    """Writing the body to a script that already exited is not an error: the response
    is what it printed.  Four at a time (the per-peer default), 200 requests."""
    url = server.url + "cgi-bin/quick"
    statuses: collections.Counter[int] = collections.Counter()
    bodies: set[bytes] = set()
    async with aiohttp.ClientSession() as session, asyncio.timeout(100):

        async def one(i: int) -> None:
            data = b"x" * (10 if i % 3 else 100_000) if i % 2 else None
            async with session.request("POST" if data else "GET", url, data=data) as response:
                statuses[response.status] += 1
                bodies.add(await response.read())

        for start in range(0, 200, 4):
            await asyncio.gather(*(one(i) for i in range(start, start + 4)))
    assert statuses == {200: 200}
    assert bodies == {b"quick\n"}


# Concurrency limits and process groups --------------------------------------------


async def start_held(port: int, host: str = "127.0.0.1") -> tuple[asyncio.StreamWriter, int]:
    """Start hold.py on a connection of its own; its headers have arrived (it runs)."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /cgi-bin/hold.py HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return writer, int(parse_response(head).headers["x-pid"])


async def scripts_ended(runner: CGIRunner, pids: list[int]) -> None:
    """Wait until the scripts ``pids`` have been killed and reaped (their slots free).

    A script dies only when its request's handler kills it, after which that handler
    has handed the reaping to the runner: ``aclose()`` then waits for exactly that.
    """
    for pid in pids:
        await process_exited(pid, timeout=10)
    await runner.aclose()


async def limited_server(
    site: Path, *, max_scripts: int = 16, max_scripts_per_peer: int = 4
) -> tuple[WebServer, CGIRunner]:
    runner = CGIRunner(
        site / "cgi-bin",
        time_limit=10.0,
        max_scripts=max_scripts,
        max_scripts_per_peer=max_scripts_per_peer,
    )
    app = web.Application()
    app.router.add_route("*", "/cgi-bin/{tail:.*}", runner.handle)

    async def reap(app: web.Application) -> None:
        await runner.aclose()

    app.on_cleanup.append(reap)
    return WebServer(app, port=0), runner


async def test_scripts_per_peer_are_limited_by_default(site: Path) -> None:
    """Four scripts per peer by default; the fifth gets 503 with Retry-After, and a
    slot frees when its script is gone."""
    server, runner = await limited_server(site)
    async with server, asyncio.timeout(20):
        port = server.address[1]
        held = [await start_held(port) for _ in range(4)]
        refused = await raw_get(port, "/cgi-bin/quick")
        assert refused.status == 503
        assert runner.running == 4
        assert int(refused.headers["retry-after"]) >= 1
        writer, pid = held.pop()
        writer.close()
        await scripts_ended(runner, [pid])
        assert runner.running == 3
        again = await raw_get(port, "/cgi-bin/quick")
        assert again.status == 200
        assert b"quick\n" in again.body
        for writer, _ in held:
            writer.close()
        await scripts_ended(runner, [pid for _, pid in held])
        assert runner.running == 0


async def test_scripts_per_server_are_limited(site: Path) -> None:
    server, runner = await limited_server(site, max_scripts=2, max_scripts_per_peer=8)
    async with server, asyncio.timeout(20):
        port = server.address[1]
        held = [await start_held(port) for _ in range(2)]
        refused = await raw_get(port, "/cgi-bin/quick")
        assert refused.status == 503
        assert "retry-after" in refused.headers
        for writer, _ in held:
            writer.close()
        await scripts_ended(runner, [pid for _, pid in held])
        assert runner.running == 0


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no ::1 here")
async def test_each_peer_has_its_own_allowance(site: Path) -> None:
    """A peer at its limit does not take another peer's slots (127.0.0.1 and ::1)."""
    runner = CGIRunner(site / "cgi-bin", max_scripts_per_peer=1)
    app = web.Application()
    app.router.add_route("*", "/cgi-bin/{tail:.*}", runner.handle)
    app_runner = web.AppRunner(app, handler_cancellation=True)
    await app_runner.setup()
    try:
        sites = [web.TCPSite(app_runner, host, 0) for host in ("127.0.0.1", "::1")]
        for each in sites:
            await each.start()
        v4, v6 = (address[1] for address in app_runner.addresses)
        async with asyncio.timeout(20):
            first, first_pid = await start_held(v4, "127.0.0.1")
            refused = await raw_get(v4, "/cgi-bin/quick")  # 127.0.0.1 again
            assert refused.status == 503
            other, other_pid = await start_held(v6, "::1")
            assert runner.running == 2
            first.close()
            other.close()
            await scripts_ended(runner, [first_pid, other_pid])
            assert runner.running == 0
    finally:
        await app_runner.cleanup()
        await runner.aclose()


@pytest.mark.parametrize(("total", "per_peer"), [(0, 4), (16, 0), (-1, -1)])
def test_limits_must_be_positive(site: Path, total: int, per_peer: int) -> None:
    with pytest.raises(ValueError, match="must be at least 1"):
        CGIRunner(site / "cgi-bin", max_scripts=total, max_scripts_per_peer=per_peer)


@pytest.mark.slow
async def test_background_child_holding_stdout_dies_at_the_time_limit(server: WebServer) -> None:
    """The script exits; a child it forked keeps stdout open: the whole process group
    is killed at the time limit, and the client sees a cut response, not a complete one."""
    async with asyncio.timeout(15):
        raw = await raw_exchange(
            server.address[1],
            b"GET /cgi-bin/daemon.py HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            timeout=10,
        )
        response = parse_response(raw)
        assert response.status == 200
        child = int(response.headers["x-child"])
        assert not raw.endswith(b"0\r\n\r\n")  # the chunked body never ended
        assert b"HTTP/1.1 504" not in response.body  # no second response inside the first
        await process_exited(child, timeout=5)


async def test_background_child_is_killed_when_the_request_ends(server: WebServer) -> None:
    """A child with its output redirected would otherwise outlive the request, and every
    concurrency limit with it."""
    async with asyncio.timeout(15):
        response = await raw_get(server.address[1], "/cgi-bin/detach.py")
        assert (response.status, response.body.count(b"started")) == (200, 1)
        child = int(response.headers["x-child"])
        await process_exited(child, timeout=5)
