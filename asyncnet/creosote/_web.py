"""A live web view of a creosote bucket: aiohttp on the same event loop.

::

    async with Bucket(port=0) as bucket, WebView(bucket, port=8765) as view:
        print("open", view.url)
        await wait_for_signal()

The page (``/``) lists messages newest first, with time and sender on each line.  It
gets them by server-sent events (``/events``, one JSON object per event with an
increasing ``id``), so a page opened late, or one whose connection dropped, first
receives the last ``history`` messages it has not seen (``Last-Event-ID``).

Every message is untrusted input.  The server sends only the escaped
:func:`~asyncnet.creosote._protocol.safe_text` of each message, and the page puts it
into the document with ``textContent``, never as HTML; the Content-Security-Policy
allows no inline script at all.  The view binds 127.0.0.1 by default.

Who may look is decided by :mod:`asyncnet.creosote._webguard`: only requests whose
Host names the bound address and whose Origin (if any) is the view's own get an
answer (DNS rebinding gets 403); request heads must be complete within
``header_timeout`` and fit in ``max_header_size`` bytes; a view listening beyond
loopback requires the random token in its :attr:`WebView.url`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web

from .._boundary import translate_os_error
from .._compat import set_shutdown_timeout
from .._lifecycle import Endpoint
from .._loopback import check_bind_host, is_loopback_host
from ..errors import ConfigurationError, StateError, format_peer
from ._bucket import Bucket
from ._formatting import cut_text, format_time, notes
from ._protocol import Message
from ._webguard import (
    Gate,
    GuardedSite,
    WebViewStats,
    http_logger,
    new_token,
    one_request_per_connection,
)
from ._webpage import PAGE, SCRIPT, SECURITY_HEADERS, STYLE

logger = logging.getLogger("asyncnet.creosote")

__all__ = ["WebView", "WebViewStats"]


@dataclass(frozen=True, slots=True)
class _Event:
    seq: int
    payload: str


_CLOSED = _Event(-1, "")


class _Client:
    """One page's bounded queue of events (oldest dropped when it falls behind)."""

    def __init__(self, max_queue: int, max_bytes: int) -> None:
        self.items: collections.deque[_Event] = collections.deque()
        self.max_queue = max_queue
        self.max_bytes = max_bytes
        self.size = 0
        self.ready = asyncio.Event()

    def put(self, event: _Event) -> None:
        self.items.append(event)
        self.size += len(event.payload)
        while len(self.items) > 1 and (
            len(self.items) > self.max_queue or self.size > self.max_bytes
        ):
            self.size -= len(self.items.popleft().payload)
        self.ready.set()

    async def get(self, timeout: float) -> _Event | None:
        """The next event, or ``None`` after ``timeout`` seconds without one."""
        if not self.items:
            self.ready.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self.ready.wait()
            except TimeoutError:
                return None
        event = self.items.popleft()
        self.size -= len(event.payload)
        return event


def _encode(seq: int, message: Message, max_text: int) -> _Event:
    data = {
        "time": format_time(message.time),
        "timestamp": message.time,
        "sender": format_peer(message.sender),
        "text": cut_text(message, max_text),
        "notes": notes(message).strip(),
        "complete": message.complete,
    }
    return _Event(seq, json.dumps(data))


class WebView(Endpoint):
    """Serve a live view of ``bucket`` over HTTP on the running loop.

    ``host`` is 127.0.0.1 unless ``all_interfaces=True``; ``port=0`` picks a free port
    (see :attr:`url`).  ``history`` messages, at most ``history_bytes`` of them, are
    kept for pages that connect late; each page has a queue of ``max_queue`` events
    (and ``max_queue_bytes``); a message's text is cut at ``max_text`` characters;
    an idle stream gets a comment line every ``keepalive`` seconds so a vanished
    browser is noticed.

    Only requests whose Host names the bound address, with no Origin or this
    view's own, are answered (403 otherwise); a request head must arrive within
    ``header_timeout`` seconds and fit in ``max_header_size`` bytes (431
    otherwise).  Listening beyond loopback (``all_interfaces=True`` or a
    non-loopback ``host``) makes a random token part of :attr:`url`, required on
    every request (``token`` says otherwise: ``True`` always, ``False`` never).
    Lifecycle as every asyncnet endpoint: ``start``, ``close``, ``wait_closed``,
    ``stop``, ``serve_forever``, ``async with``.
    """

    def __init__(
        self,
        bucket: Bucket,
        host: str | None = "127.0.0.1",
        port: int = 8765,
        *,
        all_interfaces: bool = False,
        history: int = 200,
        history_bytes: int = 4 * 1024 * 1024,
        max_queue: int = 1000,
        max_queue_bytes: int = 4 * 1024 * 1024,
        max_text: int = 64 * 1024,
        keepalive: float = 15.0,
        shutdown_timeout: float = 2.0,
        header_timeout: float = 10.0,
        max_header_size: int = 8192,
        token: bool | None = None,
    ) -> None:
        self.bucket = bucket
        self.host = check_bind_host(host, all_interfaces)
        self.port = port
        self.keepalive = keepalive
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.history_bytes = history_bytes
        self.max_text = max_text
        self._history_size = 0
        self.shutdown_timeout = shutdown_timeout
        if header_timeout <= 0:
            raise ConfigurationError(f"header_timeout must be > 0, not {header_timeout!r}")
        if max_header_size < 256:
            raise ConfigurationError(f"max_header_size must be >= 256, not {max_header_size!r}")
        self.header_timeout = header_timeout
        self.max_header_size = max_header_size
        needs_token = not is_loopback_host(self.host) if token is None else token
        self.token: str | None = new_token() if needs_token else None
        """The secret every request must carry (``None`` on loopback)."""
        self.stats = WebViewStats()
        self._gate = Gate(self.stats, self.token)
        self._history: collections.deque[_Event] = collections.deque(maxlen=max(history, 0))
        self._clients: set[_Client] = set()
        self._seq = 0
        self._runner: web.AppRunner | None = None
        self._pump: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        app = web.Application(middlewares=[self._gate.middleware])
        app.on_response_prepare.append(one_request_per_connection)
        app.router.add_get("/", self._page)
        app.router.add_get("/app.js", self._script)
        app.router.add_get("/style.css", self._style)
        app.router.add_get("/events", self._events)
        self.app = app

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> Self:
        """Start serving; raises ``NetworkError`` naming the port if it is taken."""
        if self._runner is not None:
            raise StateError("web view already started")
        # aiohttp's own per-line limits sit above ours: the guard answers 431 first,
        # so aiohttp never logs a traceback for an oversized header.
        runner = web.AppRunner(
            self.app,
            access_log=None,
            shutdown_timeout=self.shutdown_timeout,
            handle_signals=False,
            max_line_size=self.max_header_size,
            max_field_size=self.max_header_size,
            logger=http_logger(),
        )
        await runner.setup()
        site = GuardedSite(
            runner,
            self.host,
            self.port,
            gate=self._gate,
            header_timeout=self.header_timeout,
            max_header_size=self.max_header_size,
        )
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise translate_os_error(
                exc,
                subject=f"creosote web view cannot listen on tcp port {self.port}",
                peer=(self.host, self.port),
                phase="bind",
            ) from exc
        self._runner = runner
        self._gate.bind(self.host, site.port)
        subscription = self.bucket.subscribe(self.max_queue)
        self._pump = asyncio.create_task(self._forward(subscription), name="creosote web pump")
        return self

    def close(self, grace: float | None = None) -> None:
        """Begin closing: end every live stream and stop serving (returns at once).

        ``grace`` overrides ``shutdown_timeout``.
        """
        if grace is not None:
            self.shutdown_timeout = grace
            if self._runner is not None:
                set_shutdown_timeout(self._runner, grace)
        if self._runner is None or self._closing is not None:
            return
        self._closing = asyncio.get_running_loop().create_task(
            self._shutdown(), name="creosote web view shutdown"
        )

    async def wait_closed(self) -> None:
        """Wait until :meth:`close` has finished."""
        if self._closing is not None:
            await asyncio.shield(self._closing)

    async def serve_forever(self) -> None:
        """Start if needed and serve until closed; cancelling stops the view first."""
        if self._runner is None:
            await self.start()
        try:
            await self._closed.wait()
        finally:
            await self.stop()

    async def _shutdown(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        for client in self._clients:
            client.put(_CLOSED)
        if self._runner is not None:
            await self._runner.cleanup()
        self._closed.set()

    @property
    def address(self) -> Any:
        """The bound ``(host, port)``."""
        if self._runner is None or not self._runner.addresses:
            raise StateError("web view is not serving")
        return self._runner.addresses[0]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/`` (with ``?token=...`` when a token is required)."""
        query = f"?token={self.token}" if self.token is not None else ""
        return f"http://{format_peer(self.address)}/{query}"

    # -- the bucket side ------------------------------------------------------------------------

    async def _forward(self, subscription: Any) -> None:
        with subscription:
            async for message in subscription:
                self._publish(message)
        for client in self._clients:  # the bucket closed: end the streams
            client.put(_CLOSED)

    def _publish(self, message: Message) -> None:
        self._seq += 1
        event = _encode(self._seq, message, self.max_text)
        history = self._history
        if history.maxlen != 0:
            if len(history) == history.maxlen:
                self._history_size -= len(history[0].payload)
            history.append(event)
            self._history_size += len(event.payload)
            while len(history) > 1 and self._history_size > self.history_bytes:
                self._history_size -= len(history.popleft().payload)
        for client in self._clients:
            client.put(event)

    # -- HTTP -----------------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        where = format_peer(self.bucket.address).replace("&", "&amp;").replace("<", "&lt;")
        return web.Response(
            text=PAGE.format(where=f"udp://{where}"),
            content_type="text/html",
            headers=SECURITY_HEADERS,
        )

    async def _script(self, request: web.Request) -> web.Response:
        return web.Response(
            text=SCRIPT, content_type="application/javascript", headers=SECURITY_HEADERS
        )

    async def _style(self, request: web.Request) -> web.Response:
        return web.Response(text=STYLE, content_type="text/css", headers=SECURITY_HEADERS)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        try:
            last_seen = int(request.headers.get("Last-Event-ID", "0"))
        except ValueError:
            last_seen = 0
        response = web.StreamResponse(
            headers={**SECURITY_HEADERS, "Content-Type": "text/event-stream"}
        )
        await response.prepare(request)
        client = _Client(self.max_queue, self.max_queue_bytes)
        # Registering and taking the backlog with no await in between: every
        # message is sent exactly once, from the history or from the queue.
        self._clients.add(client)
        backlog = [event for event in self._history if event.seq > last_seen]
        try:
            await response.write(b"retry: 1000\n\n")
            for event in backlog:
                await response.write(_frame(event))
            while True:
                item = await client.get(self.keepalive)
                if item is None:
                    await response.write(b": keepalive\n\n")
                elif item is _CLOSED:
                    break
                else:
                    await response.write(_frame(item))
        except ConnectionError:
            pass  # the page went away
        finally:
            self._clients.discard(client)
        return response


def _frame(event: _Event) -> bytes:
    return f"id: {event.seq}\ndata: {event.payload}\n\n".encode()
