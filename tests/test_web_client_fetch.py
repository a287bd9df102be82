"""The fetch demo pointed at real servers: --fail (exit 22, as curl -f), -u basic auth,
proxies from the environment, --proxy (HTTP and SOCKS5) and --noproxy, and a quick --help."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ROOT
from .web_client_peers import (
    Seen,
    aiohttp_server,
    certificates,
    clean_environment,
    one_line_failure,
    pproxy_socks5,
    proxy_py,
    run_demo,
)

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_fail_exits_22_with_one_line_naming_the_status(tmp_path: Path) -> None:
    async with aiohttp_server(Seen()) as url:
        missing = await run_demo("fetch", url + "status/404", "--fail")
        broken = await run_demo("fetch", url + "status/503", "-f", "-o", str(tmp_path / "x"))
        shown = await run_demo("fetch", url + "status/404")  # without --fail: shown, exit 0
        fine = await run_demo("fetch", url, "--fail")
    line = one_line_failure(missing, 22, "404 Not Found", url + "status/404", "--fail")
    assert line.startswith("python -m asyncnet.demos.fetch: error: ")
    assert missing.stdout == ""  # curl -f prints no body either
    one_line_failure(broken, 22, "503 Service Unavailable")
    assert list(tmp_path.iterdir()) == []  # nothing saved, no FILE.part left
    assert shown.returncode == 0
    assert shown.stdout.startswith("404 Not Found")
    assert fine.returncode == 0
    assert fine.stdout.rstrip().endswith("hello")


async def test_user_with_the_password_from_the_environment_or_the_command_line() -> None:
    seen = Seen()
    async with aiohttp_server(seen) as url:
        from_env = await run_demo(
            "fetch", url, "-u", "alice", env=clean_environment(ASYNCNET_HTTP_PASSWORD="s3cret")
        )
        inline = await run_demo("fetch", url, "--user", "bob:pa:ss")
        empty = await run_demo("fetch", url, "-u", "carol:")
    assert from_env.returncode == inline.returncode == empty.returncode == 0
    assert seen.authorization == [
        basic("alice", "s3cret"),
        basic("bob", "pa:ss"),
        basic("carol", ""),
    ]


async def test_user_without_a_password_or_terminal_says_where_to_put_it() -> None:
    seen = Seen()
    async with aiohttp_server(seen) as url:
        result = await run_demo("fetch", url, "-u", "alice")
    one_line_failure(result, 1, "-u alice", "$ASYNCNET_HTTP_PASSWORD")
    assert seen.paths == []  # refused before any request


async def test_user_is_not_sent_to_another_origin_on_a_redirect() -> None:
    """HC2: -u's Authorization reaches the URL's origin, never the one it redirects to."""
    here, there = Seen(), Seen()
    async with aiohttp_server(here) as first, aiohttp_server(there) as second:
        result = await run_demo("fetch", f"{first}redirect?to={second}", "-u", "alice:s3cret")
    assert result.returncode == 0, result
    assert here.authorization == [basic("alice", "s3cret")]
    assert there.paths == ["/"]
    assert there.authorization == [None]


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["-u", ":secret"], "-u needs a user name"),
        (["-u", "a:b", "-H", "Authorization: Bearer x"], "not both"),
    ],
)
async def test_user_usage_errors(flags: list[str], words: str) -> None:
    one_line_failure(await run_demo("fetch", "http://127.0.0.1:1/", *flags), 2, words)


async def test_a_dead_proxy_from_the_environment_names_the_variable(closed_port: int) -> None:
    """Not silently bypassed: the target is up but never asked; --noproxy '*' reaches it."""
    seen = Seen()
    dead = closed_port
    env = clean_environment(http_proxy=f"http://127.0.0.1:{dead}")
    async with aiohttp_server(seen) as url:
        failed = await run_demo("fetch", url, env=env)
        assert seen.paths == []
        direct = await run_demo("fetch", url, "--noproxy", "*", env=env)
        listed = await run_demo("fetch", url, env={**env, "NO_PROXY": "127.0.0.1"})
    one_line_failure(
        failed, 1, f"proxy 127.0.0.1:{dead} (from http_proxy)", "check http_proxy", "--noproxy"
    )
    assert direct.returncode == listed.returncode == 0
    assert seen.paths == ["/", "/"]


async def test_a_dead_explicit_proxy_names_the_flag(closed_port: int) -> None:
    dead = closed_port
    for demo in ("fetch", "links"):
        result = await run_demo(demo, "http://127.0.0.1:1/", "--proxy", f"127.0.0.1:{dead}")
        one_line_failure(result, 1, f"proxy 127.0.0.1:{dead}", "is the proxy running", "--proxy")


async def test_a_bad_proxy_is_one_line_naming_where_it_was_set() -> None:
    flag = await run_demo("fetch", "http://127.0.0.1:1/", "--proxy", "ftp://127.0.0.1:21")
    one_line_failure(flag, 1, "--proxy: ftp:// proxies are not supported")
    variable = await run_demo(
        "fetch", "https://127.0.0.1:1/", env=clean_environment(HTTPS_PROXY="gopher://x:70")
    )
    one_line_failure(variable, 1, "HTTPS_PROXY: gopher:// proxies are not supported")


async def test_fetch_and_links_through_socks5() -> None:
    seen = Seen()
    async with aiohttp_server(seen) as url, pproxy_socks5() as socks:
        explicit = await run_demo("fetch", url, "--proxy", socks.url.replace("socks5", "socks5h"))
        first = await socks.relayed()
        from_env = await run_demo("fetch", url, env=clean_environment(ALL_PROXY=socks.url))
        second = await socks.relayed()
        crawled = await run_demo("links", url, "--ignore-robots", "--proxy", socks.url)
        third = await socks.relayed()
    assert explicit.returncode == from_env.returncode == crawled.returncode == 0
    target = url.split("//")[1].rstrip("/")
    assert target in first
    assert target in second
    assert target in third
    assert seen.paths == ["/", "/", "/"]


async def test_fetch_through_https_proxy_with_a_private_ca(tmp_path: Path) -> None:
    """The issue's case end to end: HTTPS_PROXY (proxy.py, CONNECT) and --cafile."""
    certs = certificates(tmp_path)
    seen = Seen()
    async with (
        aiohttp_server(seen, certs.server_context()) as url,
        proxy_py(tmp_path) as proxy_url,
    ):
        env = clean_environment(HTTPS_PROXY=proxy_url)
        fetched = await run_demo("fetch", url, "--cafile", str(certs.cafile), env=env)
        untrusted = await run_demo("fetch", url, "--timeout", "10", env=env)
    assert fetched.returncode == 0, fetched
    assert fetched.stdout.rstrip().endswith("hello")
    one_line_failure(untrusted, 1, "certificate")  # TLS is end to end, through the tunnel
    assert seen.paths == ["/"]


async def test_socks_without_the_extra_is_one_line() -> None:
    """As if aiohttp-socks were not installed: a None entry in sys.modules fails its import."""
    code = (
        "import sys; sys.modules['aiohttp_socks'] = None; "
        "from asyncnet.demos.fetch import main; "
        "raise SystemExit(main(['http://127.0.0.1:1/', '--proxy', 'socks5://127.0.0.1:1080']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_environment(),
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1, result
    assert result.stderr.strip().endswith("install asyncnet[socks]")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("demo", ["fetch", "links"])
def test_help_does_not_import_aiohttp(demo: str) -> None:
    code = (
        f"import sys; from asyncnet.demos.{demo} import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'aiohttp' not in sys.modules, 'aiohttp imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=30
    )
    assert result.returncode == 0, result.stderr
    flags = ["--cafile", "--cert", "--key", "--proxy", "--noproxy"]
    for flag in flags + (["--fail", "--user"] if demo == "fetch" else []):
        assert flag in result.stdout
    assert "--insecure" not in result.stdout
