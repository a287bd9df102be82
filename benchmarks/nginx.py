"""nginx for the HTTP benchmarks, on 127.0.0.1 sockets bound here.

nginx cannot listen on port 0, so we bind the sockets and hand them over the way
nginx's own binary upgrade does (the ``NGINX`` environment variable): no free-port
guessing, and connections queue until it accepts.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

__all__ = ["NGINX", "spawn_nginx"]

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
)
"""The nginx binary, or None."""

_CONFIG = """
daemon off;
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
worker_processes 1;
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ application/octet-stream bin; }}
    server {{
{server}
        root {root};
    }}
}}
"""


def spawn_nginx(
    root: Path,
    scratch: Path,
    *,
    tls: tuple[Path, Path] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> tuple[subprocess.Popen[bytes], int, int | None]:
    """nginx serving ``root`` (its files and logs in ``scratch``): the process, the
    plain port and, with ``tls=(cert, key)``, the TLS port."""
    assert NGINX is not None
    listeners = [socket.socket() for _ in range(2 if tls else 1)]
    for listener in listeners:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
    ports = [listener.getsockname()[1] for listener in listeners]
    server = [f"        listen 127.0.0.1:{ports[0]};"]
    if tls is not None:
        cert, key = tls
        server += [
            f"        listen 127.0.0.1:{ports[1]} ssl;",
            f"        ssl_certificate {cert};",
            f"        ssl_certificate_key {key};",
        ]
    # As root, the worker would drop to "nobody", who may not read the files.
    user = "user root;" if os.geteuid() == 0 else ""
    config = scratch / "nginx.conf"
    config.write_text(_CONFIG.format(tmp=scratch, user=user, server="\n".join(server), root=root))
    fds = [listener.fileno() for listener in listeners]
    proc = subprocess.Popen(
        [NGINX, "-p", str(scratch), "-c", str(config), "-e", str(scratch / "error.log")],
        env={**os.environ, "NGINX": "".join(f"{fd};" for fd in fds)},
        pass_fds=fds,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=preexec_fn,
        start_new_session=True,
    )
    for listener in listeners:
        listener.close()  # nginx holds its own copies
    return proc, ports[0], ports[1] if tls is not None else None
