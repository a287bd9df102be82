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
:func:`~asyncnet.protocols.creosote.safe_text` of each message, and the page puts it
into the document with ``textContent``, never as HTML; the Content-Security-Policy
allows no inline script at all.  The view binds 127.0.0.1 by default.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from .._boundary import translate_os_error
from ..errors import format_peer
from ..protocols.creosote import Message
from ..servers._base import check_bind_host
from .bucket import Bucket, format_time, notes

logger = logging.getLogger("asyncnet.creosote")

__all__ = ["WebView"]

_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>creosote bucket</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<h1>Mr. Creosote's bucket</h1>
<p>Debug messages arriving on <code id="where">{where}</code>, newest first.
<span id="status" data-state="connecting">connecting&hellip;</span></p>
<ol id="messages"></ol>
<script src="/app.js"></script>
</body>
</html>
"""

_SCRIPT = """"use strict";
// Message text is untrusted: it only ever goes into the page as textContent.
const list = document.getElementById("messages");
const status = document.getElementById("status");
const MAX_LINES = 500;

function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

const source = new EventSource("/events");
source.addEventListener("open", () => {
  status.textContent = "live";
  status.dataset.state = "live";
});
source.addEventListener("error", () => {
  status.textContent = "reconnecting\\u2026";
  status.dataset.state = "down";
});
source.addEventListener("message", (event) => {
  const message = JSON.parse(event.data);
  const line = document.createElement("li");
  line.append(span("time", message.time), " ", span("sender", message.sender), " ",
              span("text", message.text));
  if (message.notes) {
    line.append(" ", span("notes", message.notes));
  }
  list.prepend(line);
  while (list.children.length > MAX_LINES) {
    list.lastElementChild.remove();
  }
});
"""

_STYLE = """body { font-family: sans-serif; margin: 1em 2em; }
#status[data-state="live"] { color: green; }
#status[data-state="down"] { color: firebrick; }
ol { list-style: none; padding: 0; font-family: monospace; }
li { white-space: pre-wrap; word-break: break-all; border-bottom: 1px solid #eee; }
.time { color: #777; }
.sender { color: #36c; }
.notes { color: firebrick; }
"""


@dataclass(frozen=True, slots=True)
class _Event:
    seq: int
    payload: str


_CLOSED = _Event(-1, "")


class _Client:
    """One page's bounded queue of events (oldest dropped when it falls behind)."""

    def __init__(self, max_queue: int) -> None:
        self.items: collections.deque[_Event] = collections.deque(maxlen=max_queue)
        self.ready = asyncio.Event()

    def put(self, event: _Event) -> None:
        self.items.append(event)
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
        return self.items.popleft()


def _encode(seq: int, message: Message) -> _Event:
    data = {
        "time": format_time(message.time),
        "timestamp": message.time,
        "sender": format_peer(message.sender),
        "text": message.text,
        "notes": notes(message).strip(),
        "complete": message.complete,
    }
    return _Event(seq, json.dumps(data))


class WebView:
    """Serve a live view of ``bucket`` over HTTP on the running loop.

    ``host`` is 127.0.0.1 unless ``all_interfaces=True``; ``port=0`` picks a free port
    (see :attr:`url`).  ``history`` messages are kept for pages that connect late;
    each page has a queue of ``max_queue`` events; an idle stream gets a comment
    line every ``keepalive`` seconds so a vanished browser is noticed.
    """

    def __init__(
        self,
        bucket: Bucket,
        host: str | None = "127.0.0.1",
        port: int = 8765,
        *,
        all_interfaces: bool = False,
        history: int = 200,
        max_queue: int = 1000,
        keepalive: float = 15.0,
        shutdown_timeout: float = 2.0,
    ) -> None:
        self.bucket = bucket
        self.host = check_bind_host(host, all_interfaces)
        self.port = port
        self.keepalive = keepalive
        self.max_queue = max_queue
        self.shutdown_timeout = shutdown_timeout
        self._history: collections.deque[_Event] = collections.deque(maxlen=max(history, 0))
        self._clients: set[_Client] = set()
        self._seq = 0
        self._runner: web.AppRunner | None = None
        self._pump: asyncio.Task[None] | None = None
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/app.js", self._script)
        app.router.add_get("/style.css", self._style)
        app.router.add_get("/events", self._events)
        self.app = app

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> Self:
        """Start serving; raises ``NetworkError`` naming the port if it is taken."""
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=self.shutdown_timeout)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as exc:
            await runner.cleanup()
            raise translate_os_error(
                exc,
                subject=f"creosote web view cannot listen on tcp port {self.port}",
                peer=(self.host, self.port),
                phase="bind",
            ) from exc
        self._runner = runner
        subscription = self.bucket.subscribe(self.max_queue)
        self._pump = asyncio.create_task(self._forward(subscription), name="creosote web pump")
        return self

    async def stop(self) -> None:
        """End every live stream and stop serving."""
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        for client in self._clients:
            client.put(_CLOSED)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def address(self) -> Any:
        """The bound ``(host, port)``."""
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("web view is not serving")
        return self._runner.addresses[0]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/``."""
        return f"http://{format_peer(self.address)}/"

    # -- the bucket side ------------------------------------------------------------------------

    async def _forward(self, subscription: Any) -> None:
        with subscription:
            async for message in subscription:
                self._publish(message)
        for client in self._clients:  # the bucket closed: end the streams
            client.put(_CLOSED)

    def _publish(self, message: Message) -> None:
        self._seq += 1
        event = _encode(self._seq, message)
        self._history.append(event)
        for client in self._clients:
            client.put(event)

    # -- HTTP -----------------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        where = format_peer(self.bucket.address).replace("&", "&amp;").replace("<", "&lt;")
        return web.Response(
            text=_PAGE.format(where=f"udp://{where}"),
            content_type="text/html",
            headers=_SECURITY_HEADERS,
        )

    async def _script(self, request: web.Request) -> web.Response:
        return web.Response(
            text=_SCRIPT, content_type="application/javascript", headers=_SECURITY_HEADERS
        )

    async def _style(self, request: web.Request) -> web.Response:
        return web.Response(text=_STYLE, content_type="text/css", headers=_SECURITY_HEADERS)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        try:
            last_seen = int(request.headers.get("Last-Event-ID", "0"))
        except ValueError:
            last_seen = 0
        response = web.StreamResponse(
            headers={**_SECURITY_HEADERS, "Content-Type": "text/event-stream"}
        )
        await response.prepare(request)
        client = _Client(self.max_queue)
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
