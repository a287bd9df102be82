"""An aiohttp application as an asyncnet server, and the demo site built from the parts.

::

    async with web_server("public", port=0, cgi=True) as server:
        print("serving on", server.url)
        await my_app()

:class:`WebServer` has the lifecycle of every asyncnet server (``start``, ``close``,
``wait_closed``, ``stop``, ``serve_forever``, ``async with``), so
:func:`asyncnet.run_servers` runs it.  It binds 127.0.0.1 unless
``all_interfaces=True``, refuses ``debug=True`` on anything but loopback (before
opening a socket), closes a connection whose request headers have not arrived
within ``header_timeout`` seconds (slowloris), cancels a handler whose client
went away, and logs a malformed request (the peer's fault) as one line without a
traceback, at most one such line per 10 seconds with a count (logger
``asyncnet.web.http``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from .._httpguard import one_line_http_logger
from .._loopback import check_bind_host, is_loopback_host
from ..errors import format_peer
from ..servers import ServerBase
from ._cgi import CGIRunner
from ._debug import error_middleware
from ._errors import WebConfigurationError
from ._forms import FormPage
from ._static import StaticFiles, resolve

__all__ = ["WebServer", "site_app", "web_server"]

logger = logging.getLogger("asyncnet.web")


class WebServer(ServerBase):
    """Serve an aiohttp ``web.Application`` on ``host``:``port`` in the running loop."""

    def __init__(
        self,
        app: web.Application,
        host: str | None = "127.0.0.1",
        port: int = 8000,
        *,
        all_interfaces: bool = False,
        debug: bool = False,
        header_timeout: float = 10.0,
        max_line_size: int = 8190,
        max_field_size: int = 8190,
        max_headers: int = 100,
        access_log: bool = False,
        grace: float = 5.0,
        name: str | None = None,
    ) -> None:
        super().__init__(grace=grace, name=name or "web server")
        self.host = check_bind_host(host, all_interfaces)
        if debug and not is_loopback_host(self.host):
            where = "every interface" if self.host is None else repr(self.host)
            raise WebConfigurationError(
                "debug pages show tracebacks and local variables: "
                f"debug=True needs a loopback host, not {where}"
            )
        if header_timeout <= 0:
            raise WebConfigurationError(f"header_timeout must be > 0, not {header_timeout!r}")
        self.port = port
        self.app = app
        self.debug = debug
        self._runner_options: dict[str, Any] = {
            # aiohttp closes a connection still waiting for a complete request
            # head after keepalive_timeout, counted from the connection or the
            # last response; data trickling in does not extend it.
            "keepalive_timeout": header_timeout,
            "max_line_size": max_line_size,
            "max_field_size": max_field_size,
            "max_headers": max_headers,
            "handler_cancellation": True,
        }
        if not access_log:
            self._runner_options["access_log"] = None
        self._runner: web.AppRunner | None = None

    async def _bind(self) -> None:
        # A malformed request is the peer's fault: one line (rate-limited), not the
        # traceback aiohttp logs for each; a fresh logger per start, so per server.
        runner = web.AppRunner(
            self.app,
            shutdown_timeout=self.grace,
            logger=one_line_http_logger("asyncnet.web.http", self.name),
            **self._runner_options,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise  # ServerBase.start() words it ("cannot listen on tcp ...: in use")
        self._runner = runner

    def _bind_target(self) -> str:
        return f"tcp {format_peer((self.host or '*', self.port))}"

    async def _shutdown(self, grace: float) -> None:
        try:
            if self._runner is not None:
                await self._runner.cleanup()
        finally:
            self._mark_closed()

    @property
    def addresses(self) -> list[Any]:
        """The bound ``(host, port)`` of each listening socket."""
        return list(self._runner.addresses) if self._runner is not None else []

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/``."""
        host, port = self.address[:2]
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://{format_peer((host, port))}/"


def site_app(
    root: str | os.PathLike[str] = ".",
    *,
    cgi: bool = False,
    cgi_dir: str | os.PathLike[str] | None = None,
    form: bool = True,
    upload_dir: str | os.PathLike[str] | None = None,
    debug: bool = False,
    debug_hosts: Iterable[str] = (),
    show_hidden: bool = False,
    max_body: int = 1024 * 1024,
    cgi_options: dict[str, Any] | None = None,
) -> web.Application:
    """The demo site: static files under ``root``, ``/cgi-bin/`` scripts, ``/form``.

    ``cgi=True`` runs executables from ``cgi_dir`` (default ``root/cgi-bin``) at
    ``/cgi-bin/NAME``, never serving that folder as files whatever the spelling;
    ``cgi_options`` go to :class:`~asyncnet.web.CGIRunner` (``time_limit``,
    ``max_output``, ``max_scripts`` = 16, ``max_scripts_per_peer`` = 4).
    ``form=True`` serves the tutorial's form at ``/form`` (uploads go to
    ``upload_dir``, or are refused when it is None).  ``max_body`` bounds every
    request body.  ``debug`` shows tracebacks to loopback clients asking for
    a loopback ``Host`` or one of ``debug_hosts`` (see :mod:`asyncnet.web._debug`).
    """
    middleware = error_middleware(debug=debug, debug_hosts=debug_hosts)
    app = web.Application(middlewares=[middleware], client_max_size=max_body)
    root_path = Path(root)
    runner: CGIRunner | None = None
    if cgi:
        scripts = Path(cgi_dir) if cgi_dir is not None else root_path / "cgi-bin"
        options = {"document_root": root_path, **(cgi_options or {})}
        runner = CGIRunner(scripts, max_body=max_body, **options)
        app.router.add_route("*", "/cgi-bin/{tail:.*}", runner.handle)

        async def reap_scripts(app: web.Application) -> None:
            await runner.aclose()

        app.on_cleanup.append(reap_scripts)
    if form:
        page = FormPage(upload_dir=upload_dir, max_body=max_body)
        app.router.add_get("/form", page.get)
        app.router.add_post("/form", page.post)
    if debug:

        async def crash(request: web.Request) -> web.StreamResponse:
            secret_token = "s3cr3t"  # noqa: F841 - the debug page must redact it
            raise ValueError(f"deliberate error for {request.query.get('q', '<script>x')}")

        app.router.add_get("/debug/crash", crash)
    files = StaticFiles(root_path, show_hidden=show_hidden)
    app.router.add_get("/{tail:.*}", files.handle if runner is None else _outside(runner, files))
    return app


def _outside(runner: CGIRunner, files: StaticFiles) -> Handler:
    """``files.handle``, answering 404 for whatever resolves into the CGI directory.

    The CGI route matches one spelling of its prefix; every other one
    (``//cgi-bin/``, ``/%2e/cgi-bin/``, a symlink to the folder...) falls through to
    the static route, which must neither serve a script's source nor list the folder.
    Checking the resolved target covers every spelling at once.
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        target = resolve(files.root, request.raw_path, show_hidden=files.show_hidden)
        if runner.owns(target):
            raise web.HTTPNotFound()
        return await files.handle(request)

    return handle


def web_server(
    root: str | os.PathLike[str] = ".",
    host: str | None = "127.0.0.1",
    port: int = 8000,
    *,
    all_interfaces: bool = False,
    debug: bool = False,
    header_timeout: float = 10.0,
    **site: Any,
) -> WebServer:
    """A :class:`WebServer` for :func:`site_app` (``root`` must be a directory)."""
    return WebServer(
        site_app(root, debug=debug, **site),
        host,
        port,
        all_interfaces=all_interfaces,
        debug=debug,
        header_timeout=header_timeout,
    )
