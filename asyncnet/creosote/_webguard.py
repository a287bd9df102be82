"""What keeps strangers out of the creosote web view: Host, Origin, token, header limits.

Debug messages often hold secrets, and a page on *any* web site can reach a server
on 127.0.0.1 by re-pointing its own host name there (DNS rebinding).  So:

* **Host** must name the address the view is bound to, with its port: a
  loopback name or address (``127.0.0.1:PORT``, ``localhost:PORT``,
  ``[::1]:PORT``) or the explicit bind host (the rule is
  :class:`asyncnet._httpguard.HostRule`, shared with the web server's debug
  pages).  A rebinding page sends its own name, and gets 403.  A view bound to
  every interface cannot list its names, so there the token below does this job.
* **Origin**, when present, must be this same origin (``http://`` + the Host); a
  cross-site request gets 403.
* **A token**, when the view listens beyond loopback: a random secret in the URL
  printed at start (like Jupyter's), required on every request, as the ``token``
  query parameter or the cookie (``creosote_token_PORT``) the page sets from it.
* **Header limits**, enforced on the raw bytes before aiohttp parses anything: a
  connection whose request head (request line and headers) is not complete within
  ``header_timeout`` seconds is closed; one larger than ``max_header_size`` bytes
  gets ``431`` and is closed.  Each connection carries one request, so every
  request passes this check.  Refusals are counted in ``view.stats`` and logged at
  most once per 10 seconds per kind, never with a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, cast

from aiohttp import web

from .._httpguard import HostRule, one_line_http_logger
from .._ratelimit import RateLimitedLog

logger = logging.getLogger("asyncnet.creosote")

TOKEN_COOKIE = "creosote_token_{port}"
"""The cookie carrying the token; one per port, since cookies ignore ports and two
views on one host must not overwrite each other's."""
_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 33\r\nConnection: close\r\n\r\n"
    b"request header fields too large\r\n"
)


@dataclass(slots=True)
class WebViewStats:
    """Counters of a :class:`~asyncnet.creosote._web.WebView`; it only ever adds to them."""

    requests: int = 0
    """Requests that passed every check."""
    forbidden_host: int = 0
    forbidden_origin: int = 0
    forbidden_token: int = 0
    header_timeouts: int = 0
    """Connections closed because their request head was not complete in time."""
    headers_too_large: int = 0
    """Connections answered 431 because their request head was too large."""

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return asdict(self)


def new_token() -> str:
    """A fresh random token for a view that listens beyond loopback."""
    return secrets.token_urlsafe(24)


class Gate:
    """The per-request checks (an aiohttp middleware) and the shared refusal log."""

    def __init__(self, stats: WebViewStats, token: str | None) -> None:
        self.stats = stats
        self.token = token
        self.hosts: HostRule | None = HostRule(port=0)  # nothing matches until bind()
        self.cookie = TOKEN_COOKIE.format(port=0)
        self._logs: dict[str, RateLimitedLog] = {}

    def bind(self, host: str | None, port: int) -> None:
        """Allow the Host values naming ``host:port`` (``None``: any Host, token required)."""
        self.cookie = TOKEN_COOKIE.format(port=port)
        self.hosts = None if host is None else HostRule([host], port=port)

    def refuse(self, kind: str, what: str, peer: Any) -> None:
        """Count a refusal of ``kind`` and log it, at most once per interval per kind."""
        count = getattr(self.stats, kind) + 1
        setattr(self.stats, kind, count)
        since = self._logs.setdefault(kind, RateLimitedLog()).hit(time.monotonic())
        if since:
            logger.warning(
                "creosote web view: %s from %s (%d such, %d since the last report)",
                what,
                peer,
                count,
                since,
            )

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Refuse foreign Host and Origin values and missing tokens with 403."""
        peer = request.remote or "?"
        host = request.headers.get("Host", "").lower()
        if self.hosts is not None and not self.hosts.allows(host):
            self.refuse("forbidden_host", f"refused Host {host[:100]!r}", peer)
            raise web.HTTPForbidden(text="forbidden: unknown Host\n")
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower() != f"http://{host}":
            self.refuse("forbidden_origin", f"refused Origin {origin[:100]!r}", peer)
            raise web.HTTPForbidden(text="forbidden: cross-origin request\n")
        from_query = False
        if self.token is not None:
            given = request.query.get("token")
            from_query = given is not None
            if given is None:
                given = request.cookies.get(self.cookie, "")
            if not secrets.compare_digest(given.encode(), self.token.encode()):
                self.refuse("forbidden_token", "refused a request without the token", peer)
                raise web.HTTPForbidden(text="forbidden: open the URL with its token\n")
        self.stats.requests += 1
        response = await handler(request)
        if from_query and self.token is not None and not response.prepared:
            response.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict")
        return response


def http_logger() -> logging.Logger:
    """A logger for aiohttp's request handler: a peer's malformed request is one line.

    (The shared :func:`asyncnet._httpguard.one_line_http_logger`, one per view, so
    each view has its own rate limit; records go on to ``asyncnet.creosote.http``.)
    """
    return one_line_http_logger("asyncnet.creosote.http", "creosote web view")


async def one_request_per_connection(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: close after each response, so each request head is checked."""
    response.force_close()


class HeadGuard(asyncio.Protocol):
    """Sits in front of aiohttp's protocol; passes bytes on once the head is complete.

    The head (request line and headers, up to the blank line) must arrive within
    ``timeout`` seconds and be at most ``limit`` bytes.  Until then nothing reaches
    aiohttp, so its parser never sees an oversized or unfinished head.
    """

    def __init__(self, inner: asyncio.Protocol, gate: Gate, timeout: float, limit: int) -> None:
        self._inner = inner
        self._gate = gate
        self._timeout = timeout
        self._limit = limit
        self._held: list[bytes] = []
        self._size = 0
        self._tail = b""
        self._passing = False
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the head timer, then hand the connection to aiohttp."""
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance here.
        self._transport = cast(asyncio.Transport, transport)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._timeout, self._timed_out)
        self._inner.connection_made(transport)

    def _peer(self) -> str:
        peer = self._transport.get_extra_info("peername") if self._transport else None
        return str(peer[0]) if peer else "?"

    def _timed_out(self) -> None:
        self._timer = None
        if self._passing or self._transport is None or self._transport.is_closing():
            return
        self._gate.refuse(
            "header_timeouts",
            f"closed a connection with no complete head in {self._timeout:g} s",
            self._peer(),
        )
        self._transport.close()

    def data_received(self, data: bytes) -> None:
        """Hold bytes until the head is complete (or too large), then pass them on."""
        if self._passing:
            self._inner.data_received(data)
            return
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        # The blank line may straddle two reads: look at the last 3 bytes as well.
        window = self._tail + data
        end = _head_end(window)
        head_size = self._size + len(data) if end < 0 else self._size - len(self._tail) + end
        if head_size > self._limit:
            self._gate.refuse(
                "headers_too_large",
                f"answered 431 to a request head over {self._limit} bytes",
                self._peer(),
            )
            self._held.clear()
            transport.write(_431)
            transport.close()
            return
        self._held.append(data)
        self._size += len(data)
        self._tail = window[-3:]
        if end < 0:
            return
        self._passing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held, self._held = b"".join(self._held), []
        self._inner.data_received(held)

    def eof_received(self) -> bool | None:
        """Pass the EOF on (aiohttp decides whether to keep the transport open)."""
        if not self._passing:
            return None  # an unfinished head and EOF: just close
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timer and tell aiohttp."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._held.clear()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        """Pass flow control on to aiohttp."""
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        """Pass flow control on to aiohttp."""
        self._inner.resume_writing()


def _head_end(window: bytes) -> int:
    """Where the head ends in ``window`` (just past its blank line), or -1.

    CRLF CRLF as browsers send it; a bare LF LF too, so that a sloppy client gets
    aiohttp's answer (400 or a page) rather than the header timeout.
    """
    ends = [i + len(mark) for mark in (b"\r\n\r\n", b"\n\n") if (i := window.find(mark)) >= 0]
    return min(ends) if ends else -1


class GuardedSite(web.TCPSite):
    """A ``TCPSite`` whose connections each go through a :class:`HeadGuard` first."""

    __slots__ = ("_gate", "_head_limit", "_head_timeout")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        *,
        gate: Gate,
        header_timeout: float,
        max_header_size: int,
    ) -> None:
        super().__init__(runner, host, port)
        self._gate = gate
        self._head_timeout = header_timeout
        self._head_limit = max_header_size

    async def start(self) -> None:
        """Register with the runner and listen (as ``TCPSite.start``, guarded)."""
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        gate, timeout, limit = self._gate, self._head_timeout, self._head_limit

        def factory() -> asyncio.Protocol:
            return HeadGuard(server(), gate, timeout, limit)

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            factory, self._host, self._port, backlog=self._backlog
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
