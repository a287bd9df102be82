"""Real peers for the web client's TLS and proxy tests, all on 127.0.0.1 port 0: an
aiohttp server (HTTP or HTTPS), proxy.py (HTTP forward proxy and CONNECT), pproxy
(SOCKS5), and the fetch/links demos run as programs with a clean proxy environment."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from .helpers import ROOT, wait_until

PROXY_VARIABLES = [
    f"{scheme}_{suffix}"
    for scheme in ("http", "https", "all", "no", "HTTP", "HTTPS", "ALL", "NO")
    for suffix in (("proxy",) if scheme.islower() else ("PROXY",))
]


def clean_environment(**extra: str) -> dict[str, str]:
    """os.environ without any proxy variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    env.update(extra)
    return env


@dataclass
class Seen:
    """What the test server saw: each request's path and its Authorization header."""

    paths: list[str] = field(default_factory=list)
    authorization: list[str | None] = field(default_factory=list)
    proxy_authorization: list[str | None] = field(default_factory=list)
    client_certs: list[object] = field(default_factory=list)


def recording_app(seen: Seen) -> web.Application:
    """``/`` answers "hello"; ``/status/N`` answers N; ``/redirect?to=URL`` redirects."""

    async def record(request: web.Request) -> None:
        seen.paths.append(request.path_qs)
        seen.authorization.append(request.headers.get("Authorization"))
        seen.proxy_authorization.append(request.headers.get("Proxy-Authorization"))
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        if ssl_object is not None:
            seen.client_certs.append(ssl_object.getpeercert())

    async def hello(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(text="hello")

    async def status(request: web.Request) -> web.Response:
        await record(request)
        code = int(request.match_info["code"])
        return web.Response(status=code, text=f"status {code}")

    async def redirect(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/redirect", redirect)
    return app


@asynccontextmanager
async def aiohttp_server(seen: Seen, context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """aiohttp's own server on 127.0.0.1:0 (HTTPS with ``context``); yields its base URL."""
    runner = web.AppRunner(recording_app(seen), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"{'https' if context else 'http'}://{host}:{port}/"
    finally:
        await runner.cleanup()


@dataclass
class Certificates:
    """A throwaway CA, the server's context and the client's files, written to disk."""

    ca: trustme.CA
    cafile: Path
    client_pem: Path
    client_cert: Path
    client_key: Path

    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        if require_client_cert:
            self.ca.configure_trust(context)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def certificates(directory: Path) -> Certificates:
    ca = trustme.CA()
    cafile = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    client = ca.issue_cert("client@example.org")
    pem, cert, key = directory / "client.pem", directory / "client.crt", directory / "client.key"
    client.private_key_and_cert_chain_pem.write_to_path(str(pem))
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    return Certificates(ca, cafile, pem, cert, key)


# -- proxies -------------------------------------------------------------------------------------


@asynccontextmanager
async def proxy_py(directory: Path, *extra: str) -> AsyncIterator[str]:
    """proxy.py (a real HTTP forward proxy with CONNECT) on 127.0.0.1:0; yields its URL."""
    pytest.importorskip("proxy", reason="proxy.py is not installed (pip install proxy.py)")
    port_file = directory / "proxy.port"
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0",
         "--port-file", str(port_file), "--num-workers", "1", "--num-acceptors", "1", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        # proxy.py announces its port only in this file: nothing to await but the file.
        await wait_until(lambda: port_file.exists() and port_file.read_text().strip() != "", 30)
        port = int(port_file.read_text().split()[0])
        async with asyncio.timeout(10):  # accepting before the test proper
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait, 10)


# pproxy's own command line fails where uvloop is installed (it calls get_event_loop()
# outside a loop), so it runs through its documented Python API: port 0, the bound port
# printed, and one "VIA" line per connection it relays (the proof that traffic went
# through it).
PPROXY = """
import asyncio, sys
import pproxy

async def main():
    relayed = lambda text: print("VIA", text, flush=True)
    # authtime 0: pproxy would otherwise let a loopback client that logged in once
    # back in without credentials for 30 days.
    options = {"rserver": [], "verbose": relayed, "authtime": 0}
    server = await pproxy.Server(sys.argv[1]).start_server(options)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@dataclass
class Socks:
    url: str
    process: asyncio.subprocess.Process

    async def relayed(self) -> str:
        """The next connection pproxy relayed ("VIA socks5 ... -> host:port")."""
        assert self.process.stdout is not None
        async with asyncio.timeout(10):
            return (await self.process.stdout.readline()).decode().strip()


@asynccontextmanager
async def pproxy_socks5(user: str | None = None) -> AsyncIterator[Socks]:
    """pproxy as a SOCKS5 server on 127.0.0.1:0 (with a user:password when given)."""
    pytest.importorskip("pproxy", reason="pproxy is not installed (pip install pproxy)")
    listen = "socks5://127.0.0.1:0" + (f"#{user}" if user else "")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PPROXY, listen,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20):
            port = int(await process.stdout.readline())
        yield Socks(f"socks5://127.0.0.1:{port}", process)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


# -- the demos as programs -------------------------------------------------------------------------


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


async def run_demo(demo: str, *args: str, env: dict[str, str] | None = None) -> Result:
    """``python -m asyncnet.demos.DEMO ARGS`` without a terminal, with a proxy-free
    environment unless ``env`` is given; bounded in time."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", f"asyncnet.demos.{demo}", *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env if env is not None else clean_environment(),
    )  # fmt: skip
    try:
        async with asyncio.timeout(30):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


def one_line_failure(result: Result, status: int, *words: str) -> str:
    """The demo failed with ``status`` and one stderr line holding ``words``; the line."""
    assert result.returncode == status, result
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.error_lines) == 1, result.stderr
    line = result.error_lines[0]
    for word in words:
        assert word in line, line
    return line
