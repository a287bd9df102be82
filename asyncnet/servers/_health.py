"""A tiny health listener for load balancers: healthy while the servers serve.

A balancer (HAProxy ``check``, an AWS NLB target group, Kubernetes probes) probes
each instance and sends traffic only to healthy ones.  :class:`HealthServer`
listens on a port of its own and answers

* ``GET /healthz`` (``mode="http"``, the default): ``200 ok`` while every watched
  server is serving, ``503 draining`` from the moment one starts to shut down
  (or before it has started);
* a bare TCP connect (``mode="tcp"``): accepted while healthy; once draining the
  listener closes, so the balancer's connect fails.

Rolling restarts: pass the health server *last* to :func:`asyncnet.run_servers`
(servers stop in reverse order).  On SIGTERM it stops first: it reports
unhealthy at once, keeps doing so for ``drain_delay`` seconds while the real
servers still accept (time for the balancer to notice and stop sending new
connections), then closes; then the real servers drain gracefully (``grace``)
and the process exits 0::

    upper = tcp_server(Upper, port=9999, proxy_protocol=True)
    run_servers(upper, HealthServer(upper, port=9998, drain_delay=2.0))
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar, Literal

from ..errors import ConfigurationError
from ._base import ServerBase
from ._handlers import LineHandler
from ._stream import StreamServer

__all__ = ["HealthServer"]

logger = logging.getLogger("asyncnet.server")

_MAX_HEADER_LINES = 64


class _HealthHandler(LineHandler):
    """Answers one HTTP/1.x request, then closes (the balancer opens a new one each time)."""

    reply_delimiter: ClassVar[bytes | None] = b"\r\n"
    errors: ClassVar[str] = "replace"
    max_line_length: ClassVar[int] = 1024
    error_reply: ClassVar[str | None] = None

    def __init__(self, health: HealthServer) -> None:
        self.health = health
        self.request: str | None = None
        self.header_lines = 0

    def handle_line(self, line: str) -> str | None:
        if self.request is None:
            self.request = line
            return None
        if line and self.header_lines < _MAX_HEADER_LINES:
            self.header_lines += 1
            return None
        self.close()
        if line:
            return _response(431, "too many header lines")
        return self.health.answer(self.request)


def _response(status: int, text: str) -> str:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
    reason |= {431: "Request Header Fields Too Large", 503: "Service Unavailable"}
    # The framework adds the body's final CRLF, which Content-Length counts.
    return (
        f"HTTP/1.0 {status} {reason[status]}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(text) + 2}\r\nConnection: close\r\n\r\n{text}"
    )


class HealthServer(StreamServer):
    """Report whether ``watched`` servers are serving, for a balancer's health checks.

    Options beyond :class:`StreamServer`'s (``host``, ``port``, ``sock``...):

    * ``path`` of the HTTP check (default ``/healthz``; ``HEAD`` works too);
    * ``mode``: ``"http"`` or ``"tcp"`` (see the module documentation);
    * ``drain_delay``: seconds :meth:`close` reports unhealthy before it closes
      the listener (and before :meth:`wait_closed` returns).

    :attr:`draining` can also be set by hand, to take an instance out of the
    balancer without stopping anything.
    """

    def __init__(
        self,
        *watched: ServerBase,
        host: str | None = "127.0.0.1",
        port: int = 0,
        path: str = "/healthz",
        mode: Literal["http", "tcp"] = "http",
        drain_delay: float = 0.0,
        name: str = "health",
        **options: Any,
    ) -> None:
        if mode not in ("http", "tcp"):
            raise ConfigurationError(f"mode must be 'http' or 'tcp', not {mode!r}")
        if drain_delay < 0:
            raise ConfigurationError(f"drain_delay must be >= 0, not {drain_delay!r}")
        if not path.startswith("/"):
            raise ConfigurationError(f"path must start with '/', not {path!r}")
        options.setdefault("idle_timeout", 10.0)
        options.setdefault("line_timeout", 5.0)
        options.setdefault("grace", 1.0)
        super().__init__(lambda: _HealthHandler(self), host=host, port=port, name=name, **options)
        self.watched = watched
        self.health_path = path
        self.mode = mode
        self.drain_delay = drain_delay
        self.draining = False
        """True once :meth:`close` was called (or when set by hand): report unhealthy."""
        self._drain_task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        """True while not draining and every watched server is serving."""
        return not self.draining and all(s.is_serving for s in self.watched)

    def answer(self, request_line: str) -> str:
        """The HTTP response for one request line."""
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return _response(400, "bad request")
        method, target, _ = parts
        if target.split("?", 1)[0] != self.health_path:
            return _response(404, "not found")
        if method not in ("GET", "HEAD"):
            return _response(405, "use GET")
        return _response(200, "ok") if self.healthy else _response(503, "draining")

    def close(self, grace: float | None = None) -> None:
        """Report unhealthy now; close the listener after ``drain_delay`` (at once in tcp mode)."""
        if not self._started or self._drain_task is not None:
            return
        self.draining = True
        if self.drain_delay:
            logger.info(
                "%s: draining, unhealthy for %g s before closing", self.name, self.drain_delay
            )
        if self.mode == "tcp":
            super().close(grace)
        self._drain_task = self.loop.create_task(self._drain(grace), name=f"{self.name} drain")

    async def _drain(self, grace: float | None) -> None:
        if self.drain_delay:
            await asyncio.sleep(self.drain_delay)
        super().close(grace)

    async def wait_closed(self) -> None:
        """Wait for the drain delay and the listener's shutdown."""
        if self._drain_task is not None:
            await asyncio.shield(self._drain_task)
        await super().wait_closed()
