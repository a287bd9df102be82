"""The web client's TLS: ``ssl: SSLContext | bool | None`` as every asyncnet client takes
it, a private CA added with --cafile, a client certificate, against aiohttp's HTTPS server."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from asyncnet._tls import client_context
from asyncnet.errors import NetworkError
from asyncnet.web import Client, WebConfigurationError

from .web_client_peers import (
    Seen,
    aiohttp_server,
    certificates,
    one_line_failure,
    run_demo,
)

pytestmark = pytest.mark.timeout(60)


async def test_a_private_ca_added_with_cafile_is_trusted(tmp_path: Path) -> None:
    """The system store alone refuses the server; the same plus the CA file accepts it."""
    certs = certificates(tmp_path)
    seen = Seen()
    async with aiohttp_server(seen, certs.server_context()) as url:
        async with Client(timeout=10) as client:
            with pytest.raises(NetworkError, match=r"TLS: .*certificate verify failed"):
                await client.fetch(url)
        async with Client(timeout=10, ssl=client_context(cafile=certs.cafile)) as client:
            response = await client.fetch(url)
    assert response.text() == "hello"
    assert seen.paths == ["/"]


async def test_a_client_certificate_the_server_requires(tmp_path: Path) -> None:
    certs = certificates(tmp_path)
    seen = Seen()
    server_context = certs.server_context(require_client_cert=True)
    async with aiohttp_server(seen, server_context) as url:
        anonymous = client_context(cafile=certs.cafile)
        async with Client(timeout=10, ssl=anonymous) as client:
            with pytest.raises(NetworkError):
                await client.fetch(url)
        identified = client_context(cafile=certs.cafile, certfile=certs.client_pem)
        async with Client(timeout=10, ssl=identified) as client:
            response = await client.fetch(url)
    assert response.text() == "hello"
    assert seen.paths == ["/"]  # the anonymous attempt never reached the application
    names = seen.client_certs[0]["subjectAltName"]  # type: ignore[index]
    assert ("email", "client@example.org") in names


async def test_ssl_per_request_replaces_the_clients(tmp_path: Path) -> None:
    certs = certificates(tmp_path)
    async with aiohttp_server(Seen(), certs.server_context()) as url, Client(timeout=10) as client:
        response = await client.fetch(url, ssl=client_context(cafile=certs.cafile))
        with pytest.raises(NetworkError, match="certificate"):
            await client.fetch(url)  # the client's own setting is unchanged
    assert response.status == 200


async def test_skipping_verification_is_a_context_built_on_purpose(tmp_path: Path) -> None:
    """There is no verify=False: an unverified context shows in the caller's code."""
    certs = certificates(tmp_path)
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    async with aiohttp_server(Seen(), certs.server_context()) as url:
        async with Client(timeout=10, ssl=unverified) as client:
            assert (await client.fetch(url)).text() == "hello"
    with pytest.raises(TypeError):
        Client(verify=False)  # type: ignore[call-arg]


async def test_ssl_false_refuses_https_and_a_redirect_to_it(tmp_path: Path) -> None:
    """ssl=False means "no TLS": an https:// URL is refused before any connection, and a
    redirect to one is refused too (aiohttp's own False would mean "unverified")."""
    certs = certificates(tmp_path)
    plain_seen, tls_seen = Seen(), Seen()
    async with (
        aiohttp_server(plain_seen) as plain,
        aiohttp_server(tls_seen, certs.server_context()) as secure,
        Client(timeout=10, ssl=False) as client,
    ):
        with pytest.raises(WebConfigurationError, match=r"ssl=False .*ssl=None"):
            await client.fetch(secure)
        assert tls_seen.paths == []
        assert (await client.fetch(plain)).text() == "hello"
        with pytest.raises(WebConfigurationError, match=r"^https://127\.0\.0\.1:\d+/: .*ssl=False"):
            await client.fetch(f"{plain}redirect?to={secure}")
    # Followed with verification (the certificate is untrusted), so never answered.
    assert tls_seen.paths == []


def test_an_ssl_setting_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(WebConfigurationError, match=r"ssl must be an ssl\.SSLContext"):
        Client(ssl="yes")  # type: ignore[arg-type]


# -- the demos ---------------------------------------------------------------------------------


@pytest.mark.slow
async def test_fetch_and_links_trust_cafile(tmp_path: Path) -> None:
    certs = certificates(tmp_path)
    async with aiohttp_server(Seen(), certs.server_context()) as url:
        untrusted = await run_demo("fetch", url, "--timeout", "10")
        fetched = await run_demo("fetch", url, "--cafile", str(certs.cafile))
        crawled = await run_demo("links", url, "--cafile", str(certs.cafile), "--ignore-robots")
    one_line_failure(untrusted, 1, "certificate", "a CA you trust")
    assert fetched.returncode == 0, fetched
    assert fetched.stdout.startswith(f"200 OK  {url}\n")
    assert fetched.stdout.rstrip().endswith("hello")
    assert crawled.returncode == 0, crawled
    assert "1 pages checked, 0 broken" in crawled.stdout


@pytest.mark.slow
async def test_fetch_presents_cert_and_key(tmp_path: Path) -> None:
    certs = certificates(tmp_path)
    seen = Seen()
    async with aiohttp_server(seen, certs.server_context(require_client_cert=True)) as url:
        separate = await run_demo(
            "fetch", url, "--cafile", str(certs.cafile),
            "--cert", str(certs.client_cert), "--key", str(certs.client_key),
        )  # fmt: skip
        together = await run_demo(
            "fetch", url, "--cafile", str(certs.cafile), "--cert", str(certs.client_pem)
        )
        without = await run_demo("fetch", url, "--cafile", str(certs.cafile), "--timeout", "10")
    assert separate.returncode == 0, separate
    assert together.returncode == 0, together
    one_line_failure(without, 1)
    assert len(seen.client_certs) == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--cafile", "{tmp}/missing.pem"], ["--cafile", "missing.pem", "no such file"]),
        (["--cafile", "{tmp}/junk.pem"], ["--cafile", "junk.pem", "not a PEM CA certificate"]),
        (["--cert", "{tmp}/junk.pem"], ["--cert", "junk.pem"]),
        (["--key", "{tmp}/junk.pem"], ["--key needs --cert"]),
    ],
)
async def test_a_bad_tls_file_is_one_line_naming_its_option(
    tmp_path: Path, flags: list[str], words: list[str]
) -> None:
    """Checked before any connection: the URL's port has nothing listening."""
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    args = [flag.format(tmp=tmp_path) for flag in flags]
    for demo in ("fetch", "links"):
        result = await run_demo(demo, "https://127.0.0.1:1/", *args)
        one_line_failure(result, 1, *words)


@pytest.mark.slow
async def test_insecure_is_refused_with_what_to_do_instead() -> None:
    result = await run_demo("fetch", "https://127.0.0.1:1/", "--insecure")
    line = one_line_failure(result, 2, "--insecure", "--cafile")
    assert line.startswith("python -m asyncnet.demos.fetch: error: ")
