"""The client against an independent server: nginx from Debian's packages, on loopback.

nginx cannot listen on port 0, so the test binds 127.0.0.1:0 itself and hands the
listening socket to nginx the way nginx hands sockets to its own new binary (the
``NGINX`` environment variable): no free-port guessing, no race, and no waiting
for readiness (connections queue on the socket until nginx accepts them).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from asyncnet.web import Client, Request

from .test_web_client import proxy_py

pytestmark = pytest.mark.slow

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
)

CONFIG = """
daemon off;
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 64; }}
worker_processes 1;
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ text/html html; text/plain txt; application/octet-stream bin; }}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {tmp}/www;
        gzip on;
        gzip_types text/plain;
        gzip_min_length 0;
        location = /moved {{ return 301 /hello.txt; }}
        location = /echo-agent {{
            default_type text/plain;
            return 200 "$http_user_agent|$http_x_test";
        }}
    }}
}}
"""


@asynccontextmanager
async def nginx(tmp: Path) -> AsyncIterator[str]:
    if NGINX is None:
        pytest.skip("nginx is not installed (Debian: apt-get install -y nginx-light)")
    www = tmp / "www"
    www.mkdir()
    (www / "hello.txt").write_text("hello from nginx\n" * 100)
    (www / "big.bin").write_bytes(os.urandom(1024 * 1024))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    # As root, nginx's workers would drop to "nobody", who cannot read pytest's tmp_path.
    user = "user root;" if os.geteuid() == 0 else ""
    (tmp / "nginx.conf").write_text(CONFIG.format(tmp=tmp, port=port, user=user))
    fd = listener.fileno()
    process = subprocess.Popen(
        [NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")],
        env={**os.environ, "NGINX": f"{fd};"},
        pass_fds=[fd],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    listener.close()  # nginx has its own copy of the listening socket now
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)  # graceful stop
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the master and its worker
            await asyncio.to_thread(process.wait, 10)
        assert process.stderr is not None
        errors = process.stderr.read().decode(errors="replace")
        process.stderr.close()
        assert "emerg" not in errors, errors


async def test_client_against_nginx(tmp_path: Path) -> None:
    async with nginx(tmp_path) as base, Client(timeout=10) as client:
        hello = await client.fetch(base + "hello.txt", headers={"Accept-Encoding": "gzip"})
        head = await client.fetch(base + "hello.txt", method="HEAD")
        moved = await client.fetch(base + "moved")
        request = Request(base + "echo-agent", headers={"X-Test": "urllib2-style"})
        agent = await client.fetch(request)
        missing = await client.fetch(base + "missing.txt")
        ranged = await client.fetch(base + "big.bin", headers={"Range": "bytes=10-19"})
        progress: list[int] = []
        size = await client.download(
            base + "big.bin",
            tmp_path / "big.copy",
            progress=lambda done, total: progress.append(done),
        )
    assert hello.status == 200
    assert hello.headers["Server"].startswith("nginx")
    assert hello.headers.get("Content-Encoding") == "gzip"  # nginx compressed it
    assert hello.body == b"hello from nginx\n" * 100  # and the client decoded it
    assert head.status == 200
    assert head.body == b""
    assert moved.history == (base + "moved",)
    assert moved.text().startswith("hello from nginx")
    assert agent.text() == "asyncnet|urllib2-style"
    assert missing.status == 404
    assert ranged.status == 206
    assert ranged.body == (tmp_path / "www" / "big.bin").read_bytes()[10:20]
    assert size == 1024 * 1024
    assert (tmp_path / "big.copy").read_bytes() == (tmp_path / "www" / "big.bin").read_bytes()
    assert progress[-1] == size


async def test_nginx_through_a_forward_proxy(tmp_path: Path) -> None:
    """urllib2's set_proxy: nginx reached through proxy.py, both on loopback."""
    (tmp_path / "nginx").mkdir()
    (tmp_path / "proxy").mkdir()
    async with nginx(tmp_path / "nginx") as base, proxy_py(tmp_path / "proxy") as proxy_url:
        request = Request(base + "hello.txt")
        request.set_proxy(proxy_url.removeprefix("http://"), "http")
        async with Client(timeout=20) as client:
            response = await client.fetch(request)
    assert response.status == 200
    assert response.headers["Server"].startswith("nginx")
    assert response.body == b"hello from nginx\n" * 100
    access = (tmp_path / "nginx" / "access.log").read_text()
    assert "GET /hello.txt" in access
