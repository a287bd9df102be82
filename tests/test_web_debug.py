"""Debug pages, the cgitb successor (H7): off by default, loopback only, everything escaped."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from asyncnet.web import WebConfigurationError, WebServer, web_server
from asyncnet.web._debug import error_middleware, escape_log

from .web_helpers import raw_get


def _app(debug: bool) -> web.Application:
    async def crash(request: web.Request) -> web.Response:
        api_token = "s3cr3t-value"  # noqa: F841 - must be redacted on the page
        note = "<b>local & escaped</b>"  # noqa: F841
        raise ValueError("<script>x")

    app = web.Application(middlewares=[error_middleware(debug=debug)])
    app.router.add_get("/crash", crash)
    return app


async def _get(server: WebServer, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, asyncio.timeout(10):
        async with session.get(server.url + path.lstrip("/")) as response:
            return response.status, await response.text()


async def test_plain_500_with_id_by_default(caplog: pytest.LogCaptureFixture) -> None:
    """H7: without debug, a plain 500 naming an error id; the traceback only in the log."""
    caplog.set_level(logging.ERROR, logger="asyncnet.web")
    async with WebServer(_app(debug=False), port=0) as server:
        status, body = await _get(server, "/crash")
    assert status == 500
    assert "Traceback" not in body
    assert "<script>" not in body
    assert "s3cr3t" not in body
    [record] = [r for r in caplog.records if r.name == "asyncnet.web"]
    error_id = body.split("error id ")[1].split(")")[0]
    assert error_id in record.getMessage()
    assert record.exc_info is not None


async def test_debug_page_escapes_and_redacts() -> None:
    """H7: with debug on loopback, traceback and locals, escaped; secret-looking locals hidden."""
    async with WebServer(_app(debug=True), port=0, debug=True) as server:
        status, body = await _get(server, "/crash?<img>")
    assert status == 500
    assert "ValueError: &lt;script&gt;x" in body
    assert "<script>" not in body
    assert "&lt;b&gt;local &amp; escaped&lt;/b&gt;" in body
    assert "api_token" in body
    assert "s3cr3t-value" not in body
    assert "<img>" not in body
    assert "Traceback" in body


async def test_debug_page_is_not_shown_to_other_addresses() -> None:
    """H7: a request that is not from loopback gets the plain page even in debug mode."""
    seen = {}

    @web.middleware
    async def pretend_remote(request: web.Request, handler):  # type: ignore[no-untyped-def]
        seen["remote"] = "192.0.2.7"
        return await handler(request.clone(remote="192.0.2.7"))

    app = _app(debug=True)
    app.middlewares.insert(0, pretend_remote)
    async with WebServer(app, port=0, debug=True) as server:
        status, body = await _get(server, "/crash")
    assert seen
    assert status == 500
    assert "Traceback" not in body
    assert "error id" in body


@pytest.mark.parametrize(("host", "all_interfaces"), [(None, True), ("0.0.0.0", True)])
def test_debug_refuses_non_loopback_bind_before_any_socket(
    host: str | None, all_interfaces: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """H7: debug on every interface is refused before a socket exists."""
    opened: list[object] = []
    real_socket = socket.socket

    def recording_socket(*args: object, **kwargs: object) -> socket.socket:
        opened.append(args)
        return real_socket(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "socket", recording_socket)
    with pytest.raises(WebConfigurationError, match="loopback"):
        WebServer(web.Application(), host, port=0, all_interfaces=all_interfaces, debug=True)
    with pytest.raises(WebConfigurationError, match="loopback"):
        web_server(".", host, port=0, all_interfaces=all_interfaces, debug=True)
    assert opened == []


def test_debug_refuses_a_routable_host() -> None:
    with pytest.raises(WebConfigurationError, match=r"192\.0\.2\.1"):
        WebServer(web.Application(), "192.0.2.1", port=0, debug=True)


async def test_site_debug_crash_page(tmp_path: Path) -> None:
    """The demo site's /debug/crash exists only with debug, and shows the escaped page."""
    async with web_server(tmp_path, port=0, debug=True) as server:
        status, body = await _get(server, "/debug/crash?q=<svg/onload=alert(1)>")
    async with web_server(tmp_path, port=0) as plain:
        async with asyncio.timeout(5):
            missing = await raw_get(plain.address[1], "/debug/crash")
    assert status == 500
    assert "&lt;svg/onload=alert(1)&gt;" in body
    assert "<svg" not in body
    assert "s3cr3t" not in body
    assert missing.status == 404


def test_log_lines_escape_control_characters() -> None:
    """H7: a request path cannot forge log lines."""
    assert escape_log("/a\r\nFAKE 200\x1b[2J") == "/a\\x0d\\nFAKE 200\\x1b[2J"


def test_redact_hides_secret_names_and_mapping_keys() -> None:
    """H7: environment-style secrets are redacted by name and by mapping key."""
    from asyncnet.web._debug import redact

    assert redact("password", "hunter2") == "'***'"
    shown = redact("env", {"HOME": "/root", "AWS_SECRET_ACCESS_KEY": "abc", "API_TOKEN": "t"})
    assert "/root" in shown
    assert "abc" not in shown
    assert "'t'" not in shown
    assert len(redact("blob", "x" * 10_000)) < 400
