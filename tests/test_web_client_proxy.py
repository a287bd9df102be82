"""The web client's proxies: HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / NO_PROXY read as curl
and requests read them, explicit proxies, SOCKS through aiohttp-socks; interop through
proxy.py (HTTP and CONNECT) and pproxy (SOCKS5), and a dead proxy named by its setting."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from yarl import URL

from asyncnet._tls import client_context
from asyncnet.web import Client, ProxyError, WebConfigurationError
from asyncnet.web._proxy import (
    ProxyChoice,
    bypasses,
    check_proxy_url,
    choose_proxy,
    parse_no_proxy,
    proxy_from_environment,
)

from .ports import refused_port
from .web_client_peers import (
    PROXY_VARIABLES,
    Seen,
    aiohttp_server,
    certificates,
    pproxy_socks5,
    proxy_py,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment without proxies (the machine's own are
    not the test's)."""
    for name in [*PROXY_VARIABLES, "REQUEST_METHOD"]:
        monkeypatch.delenv(name, raising=False)


# -- which proxy: plain code, no sockets ---------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "expected"),
    [
        ("example.org", 80, "*", True),
        ("example.org", 80, "", False),
        ("example.org", 80, "example.org", True),
        ("www.example.org", 80, "example.org", True),  # subdomains too, as curl
        ("www.example.org", 80, ".example.org", True),  # a leading dot is ignored
        ("notexample.org", 80, "example.org", False),  # a suffix, not a substring
        ("EXAMPLE.org.", 80, "example.ORG", True),  # case and a trailing dot
        ("example.org", 8080, "example.org:8080", True),
        ("example.org", 80, "example.org:8080", False),
        ("127.0.0.1", 80, "localhost", False),  # loopback is not implied
        ("127.0.0.1", 80, "127.0.0.1", True),
        ("127.0.0.9", 80, "127.0.0.0/8", True),  # CIDR (curl 7.86+, requests)
        ("10.1.2.3", 80, "127.0.0.0/8", False),
        ("::1", 80, "::1", True),
        ("[::1]", 8080, "[::1]:8080", True),
        ("::1", 80, "::/127", True),
        ("a.example", 80, "b.example, a.example", True),
        ("a.example", 80, "b.example a.example", True),
    ],
)
def test_no_proxy_matching(host: str, port: int, no_proxy: str, expected: bool) -> None:
    assert bypasses(host, port, parse_no_proxy(no_proxy)) is expected


def test_the_lowercase_variable_wins_and_all_proxy_is_the_fallback() -> None:
    env = {"http_proxy": "lower:1", "HTTP_PROXY": "upper:1", "ALL_PROXY": "socks5://all:1"}
    assert proxy_from_environment("http", env) == ("http_proxy", "lower:1")
    assert proxy_from_environment("https", env) == ("ALL_PROXY", "socks5://all:1")
    assert proxy_from_environment("https", {}) is None
    assert proxy_from_environment("http", {"http_proxy": "  "}) is None  # blank = unset


def test_uppercase_http_proxy_is_ignored_in_a_cgi_script() -> None:
    """httpoxy: in CGI, HTTP_PROXY is the request's Proxy: header, set by the client."""
    env = {"HTTP_PROXY": "http://attacker:1", "REQUEST_METHOD": "GET"}
    assert proxy_from_environment("http", env) is None
    assert proxy_from_environment("http", {**env, "http_proxy": "p:1"}) == ("http_proxy", "p:1")


def test_choose_proxy_order() -> None:
    url = URL("http://127.0.0.1:8000/")
    env = {"HTTP_PROXY": "http://env:3128", "NO_PROXY": "other.example"}
    explicit = check_proxy_url("http://explicit:8080")

    def choose(**kw: object) -> ProxyChoice | None:
        options: dict[str, object] = {"proxy": None, "trust_env": True, "no_proxy": None}
        options.update(kw)
        return choose_proxy(url, environ=env, **options)  # type: ignore[arg-type]

    assert choose() == ProxyChoice(URL("http://env:3128"), "HTTP_PROXY")
    assert choose(proxy=explicit) == ProxyChoice(explicit, None)
    assert choose(trust_env=False) is None
    assert choose(trust_env=False, proxy=explicit) == ProxyChoice(explicit, None)
    assert choose(no_proxy=("*",)) is None  # curl --noproxy '*': no proxy at all
    assert choose(proxy=explicit, no_proxy=("127.0.0.1",)) is None
    env["NO_PROXY"] = "127.0.0.1"  # the environment's list applies to every proxy, as curl
    assert choose(proxy=explicit) is None
    assert choose(proxy=explicit, no_proxy=()) == ProxyChoice(explicit, None)  # replaced
    assert choose(proxy=explicit, trust_env=False) == ProxyChoice(explicit, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:3128", "http://127.0.0.1:3128"),
        ("http://proxy.example", "http://proxy.example:1080"),  # curl's default port
        ("SOCKS5H://127.0.0.1:1080", "socks5h://127.0.0.1:1080"),
        ("http://user:secret@127.0.0.1:3128/", "http://user:secret@127.0.0.1:3128/"),
    ],
)
def test_proxy_urls_as_curl_reads_them(value: str, expected: str) -> None:
    assert str(check_proxy_url(value)) == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("ftp://127.0.0.1:21", "ftp:// proxies are not supported"),
        ("http://127.0.0.1:99999", "is not a proxy URL"),
        ("http://", "names no proxy host"),
        ("http://a b:1", "control character or space"),
        ("http://127.0.0.1:3128\r\nX-Injected: 1", "control character or space"),
    ],
)
def test_a_bad_proxy_value_names_the_variable(value: str, words: str) -> None:
    """HC3's shape for proxies: CR/LF or a space in a proxy URL is refused before use."""
    with pytest.raises(WebConfigurationError, match=rf"^HTTPS_PROXY: .*{words}"):
        check_proxy_url(value, "HTTPS_PROXY")


def test_credentials_never_appear_in_what_is_shown() -> None:
    choice = ProxyChoice(check_proxy_url("socks5://user:secret@127.0.0.1:1080"))
    assert choice.shown == "socks5://127.0.0.1:1080"


# -- the environment against real servers ----------------------------------------------------------


async def test_a_dead_proxy_from_the_environment_is_named_not_bypassed(
    monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    """HTTP_PROXY pointing at nothing is an error naming HTTP_PROXY, and the target,
    which is up, never sees the request; NO_PROXY or trust_env=False reach it directly."""
    seen = Seen()
    async with aiohttp_server(seen) as url:
        dead = closed_port
        monkeypatch.setenv("HTTP_PROXY", f"http://user:secret@127.0.0.1:{dead}")
        async with Client(timeout=10) as client:
            with pytest.raises(ProxyError) as caught:
                await client.fetch(url)
        assert caught.value.source == "HTTP_PROXY"
        assert f"proxy 127.0.0.1:{dead} (from HTTP_PROXY): Connection refused" in str(caught.value)
        assert "secret" not in str(caught.value)
        assert seen.paths == []
        async with Client(timeout=10, trust_env=False) as client:
            assert (await client.fetch(url)).text() == "hello"
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        async with Client(timeout=10) as client:
            assert (await client.fetch(url)).text() == "hello"
    assert seen.paths == ["/", "/"]


async def test_a_bad_proxy_variable_is_one_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("https_proxy", "gopher://127.0.0.1:70")
    async with Client(timeout=10) as client:
        with pytest.raises(WebConfigurationError, match=r"^https_proxy: gopher:// proxies"):
            await client.fetch("https://127.0.0.1:1/")


async def test_an_explicit_proxy_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with refused_port() as dead_env, refused_port() as dead_explicit:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead_env}")
        async with Client(timeout=10, proxy=f"http://127.0.0.1:{dead_explicit}") as client:
            expected = rf"proxy 127\.0\.0\.1:{dead_explicit}: "
            with pytest.raises(ProxyError, match=expected) as caught:
                await client.fetch("http://127.0.0.1:1/")
    assert caught.value.source is None


@pytest.mark.slow
async def test_http_proxy_and_https_proxy_through_proxy_py(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """proxy.py requiring credentials: HTTP_PROXY forwards http://, HTTPS_PROXY tunnels
    https:// (CONNECT) to a server whose CA comes from a CA file; loopback targets go
    through the proxy (NO_PROXY unset).  Wrong credentials get the proxy's 407, which
    shows the request reached the proxy and not the target."""
    certs = certificates(tmp_path)
    plain_seen, tls_seen = Seen(), Seen()
    async with (
        aiohttp_server(plain_seen) as plain,
        aiohttp_server(tls_seen, certs.server_context()) as secure,
        proxy_py(tmp_path, "--basic-auth", "alice:s3cret") as proxy_url,
    ):
        with_login = proxy_url.replace("http://", "http://alice:s3cret@")
        monkeypatch.setenv("HTTP_PROXY", with_login)
        monkeypatch.setenv("HTTPS_PROXY", with_login)
        async with Client(timeout=20, ssl=client_context(cafile=certs.cafile)) as client:
            over_http = await client.fetch(plain)
            over_tls = await client.fetch(secure)
        # A new client: proxy.py checks the login once per connection.
        wrong = proxy_url.replace("http://", "http://alice:no@")
        monkeypatch.setenv("HTTP_PROXY", wrong)
        monkeypatch.setenv("HTTPS_PROXY", wrong)
        async with Client(timeout=20, ssl=client_context(cafile=certs.cafile)) as client:
            refused = await client.fetch(plain + "status/200")
            with pytest.raises(ProxyError, match=r"\(from HTTPS_PROXY\) refused the tunnel: 407"):
                await client.fetch(secure + "status/200")
    assert over_http.text() == over_tls.text() == "hello"
    assert refused.status == 407
    assert plain_seen.paths == tls_seen.paths == ["/"]
    # Proxy credentials go to the proxy only.
    assert plain_seen.authorization == tls_seen.authorization == [None]
    assert plain_seen.proxy_authorization == tls_seen.proxy_authorization == [None]


# -- SOCKS ---------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_socks5_through_pproxy_from_all_proxy_and_explicitly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """ALL_PROXY=socks5:// and proxy="socks5h://" both reach http:// and https:// (TLS
    end to end through the tunnel) via pproxy, which reports each connection it relays."""
    certs = certificates(tmp_path)
    seen = Seen()
    async with (
        aiohttp_server(seen) as plain,
        aiohttp_server(seen, certs.server_context()) as secure,
        pproxy_socks5() as socks,
    ):
        monkeypatch.setenv("ALL_PROXY", socks.url)
        async with Client(timeout=20, ssl=client_context(cafile=certs.cafile)) as client:
            first = await client.fetch(plain)
            relayed_first = await socks.relayed()
            second = await client.fetch(secure)
            relayed_second = await socks.relayed()
        monkeypatch.delenv("ALL_PROXY")
        explicit = socks.url.replace("socks5://", "socks5h://")
        async with Client(timeout=20, proxy=explicit) as client:
            third = await client.fetch(plain + "status/201")
            relayed_third = await socks.relayed()
    assert first.text() == second.text() == "hello"
    assert third.status == 201
    assert relayed_first.startswith("VIA socks5")
    assert plain.split("//")[1].rstrip("/") in (relayed_first)
    assert secure.split("//")[1].rstrip("/") in relayed_second
    assert plain.split("//")[1].rstrip("/") in relayed_third
    assert seen.paths == ["/", "/", "/status/201"]


@pytest.mark.slow
async def test_socks5_with_credentials() -> None:
    seen = Seen()
    async with aiohttp_server(seen) as url, pproxy_socks5("alice:s3cret") as socks:
        with_login = socks.url.replace("socks5://", "socks5://alice:s3cret@")
        async with Client(timeout=20, proxy=with_login) as client:
            assert (await client.fetch(url)).text() == "hello"
        wrong = socks.url.replace("socks5://", "socks5://alice:wrong@")
        async with Client(timeout=20, proxy=wrong) as client:
            with pytest.raises(ProxyError) as caught:
                await client.fetch(url)
    assert "wrong" not in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert seen.paths == ["/"]


async def test_a_dead_socks_proxy_is_a_proxy_error(
    monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    pytest.importorskip("aiohttp_socks")
    dead = closed_port
    monkeypatch.setenv("all_proxy", f"socks5://127.0.0.1:{dead}")
    async with aiohttp_server(Seen()) as url, Client(timeout=10) as client:
        with pytest.raises(ProxyError, match=rf"proxy 127\.0\.0\.1:{dead} \(from all_proxy\)"):
            await client.fetch(url)


async def test_socks_without_the_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp_socks", None)  # as if not installed
    async with Client(timeout=10, proxy="socks5://127.0.0.1:1080") as client:
        with pytest.raises(WebConfigurationError, match=r"install asyncnet\[socks\]$"):
            await client.fetch("http://127.0.0.1:1/")
