"""The creosote bucket: a listener that collects whatever debug messages arrive.

The tutorial's bucket was a ``while 1: recvfrom(); print`` loop that owned the
process.  :class:`Bucket` is an object that lives inside your asyncio program, on an
asyncnet :class:`~asyncnet.DatagramServer` (so it binds 127.0.0.1 unless told
otherwise and has the server's stats and graceful shutdown)::

    async with Bucket(port=5555) as bucket:
        async for message in bucket:
            print(format_line(message))

or, with a callback (called on the loop for each message; keep it short)::

    async with Bucket(port=0, callback=show) as bucket:
        await something_else()

Raw datagrams come out one message each; framed ones are reassembled first (see
:mod:`asyncnet.creosote._protocol`).  Garbage and floods never stop it: every datagram
becomes a :class:`~asyncnet.creosote._protocol.Message` or part of one, partial
messages are bounded and expire, and each consumer's queue is bounded (the oldest
message is dropped, and counted, when a consumer falls behind).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Self

from .._boundary import translate_os_error
from .._lifecycle import Endpoint
from ..errors import format_peer
from ..servers import DatagramHandler, DatagramServer
from ._formatting import MAX_LINE_TEXT, cut_text, format_line, format_time, notes
from ._protocol import MAX_MESSAGE_SIZE, Message, Reassembler
from ._subscription import Subscription

logger = logging.getLogger("asyncnet.creosote")

__all__ = [
    "MAX_LINE_TEXT",
    "Bucket",
    "BucketStats",
    "Subscription",
    "cut_text",
    "format_line",
    "format_time",
    "notes",
]


@dataclass(slots=True)
class BucketStats:
    """A snapshot of a bucket's counters (``bucket.stats``)."""

    datagrams: int = 0
    bytes: int = 0
    messages: int = 0
    """Messages delivered, of every kind."""
    raw: int = 0
    """Raw datagrams (and malformed frames) delivered as messages."""
    framed: int = 0
    """Complete framed messages."""
    incomplete: int = 0
    """Framed messages given up with chunks missing (or cut)."""
    cut: int = 0
    """Messages cut at ``max_message_size`` (they end with the bucket's marker)."""
    chunks_dropped: int = 0
    """Chunks of cut messages dropped unread."""
    chunks_lost: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    malformed: int = 0
    partial_messages: int = 0
    """Messages waiting for more chunks right now."""
    partial_bytes: int = 0
    """Bytes held for them right now."""
    queue_dropped: int = 0
    """Messages a slow consumer never got (the oldest in its queue made room)."""
    callback_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return asdict(self)


class _BucketHandler(DatagramHandler):
    """Feeds each datagram to the bucket; a bucket never replies."""

    def __init__(self, bucket: Bucket) -> None:
        self._bucket = bucket

    def handle(self, data: bytes, addr: Any) -> None:
        self._bucket._datagram(data, addr)

    def finish(self) -> None:
        self._bucket._finished()


class Bucket(Endpoint):
    """An embeddable creosote listener (an async context manager).

    ``host`` defaults to 127.0.0.1 (``all_interfaces=True`` to hear the whole LAN,
    e.g. broadcasts) and ``port`` to :data:`asyncnet.creosote.PORT`; ``port=0`` picks
    a free port (read it back from :attr:`address`).  Without a ``callback``,
    ``async for message in bucket`` yields every message from the moment the bucket
    started; :meth:`subscribe` gives further consumers a queue of their own.
    ``max_queue`` and ``max_queue_bytes`` bound each queue; ``max_message_size``
    (64 KiB: longer messages are cut, with a marker), ``max_partials``,
    ``max_partial_bytes`` and ``expiry`` bound reassembly (see
    :class:`~asyncnet.creosote._protocol.Reassembler`), so the bucket's memory is
    bounded in bytes, not only in messages.  Partial messages still
    waiting when the bucket closes are delivered as incomplete (reason ``closed``).

    Binding a port that is already in use raises :class:`~asyncnet.errors.NetworkError`
    (an ``OSError`` with ``errno.EADDRINUSE``) naming the port.
    """

    def __init__(
        self,
        host: str | None = "127.0.0.1",
        port: int | None = None,
        *,
        all_interfaces: bool = False,
        family: int = socket.AF_UNSPEC,
        callback: Callable[[Message], object] | None = None,
        max_queue: int = 1000,
        max_queue_bytes: int = 16 * 1024 * 1024,
        max_message_size: int = MAX_MESSAGE_SIZE,
        max_partials: int = 256,
        max_partial_bytes: int = 8 * 1024 * 1024,
        expiry: float = 5.0,
        receive_buffer: int | None = None,
    ) -> None:
        if port is None:
            from .. import creosote

            port = creosote.PORT
        self.host = None if all_interfaces else host
        self.port = port
        self.callback = callback
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self._reassembler = Reassembler(
            max_message_size=max_message_size,
            max_partials=max_partials,
            max_partial_bytes=max_partial_bytes,
            expiry=expiry,
        )
        self.server = DatagramServer(
            _BucketHandler(self),
            host=self.host,
            port=port,
            all_interfaces=all_interfaces,
            family=family,
            receive_buffer=receive_buffer,
            name="creosote bucket",
        )
        self._subscribers: list[Subscription] = []
        self._default = Subscription(self, max_queue, max_queue_bytes) if callback is None else None
        if self._default is not None:
            self._subscribers.append(self._default)
        self._delivered = 0
        self._queue_dropped = 0
        self._callback_errors = 0
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> Self:
        """Bind and start listening; raises ``NetworkError`` if the port is taken."""
        self._started = True
        try:
            await self.server.start()
        except OSError as exc:
            where = format_peer((self.host or "*", self.port))
            raise translate_os_error(
                exc,
                subject=f"creosote bucket cannot listen on udp port {self.port} ({where})",
                peer=(self.host, self.port),
                phase="bind",
                reasons={
                    errno.EADDRINUSE: "the port is already in use (is another bucket listening?)"
                },
            ) from exc
        return self

    def close(self, grace: float | None = None) -> None:
        """Stop listening (returns at once); iterations end once their queues are consumed.

        ``grace`` is passed to the server.
        """
        self.server.close(grace)

    async def wait_closed(self) -> None:
        """Wait until the bucket has closed."""
        await self.server.wait_closed()

    async def serve_forever(self) -> None:
        """Start if needed and listen until closed (what :func:`asyncnet.run_servers` runs).

        Cancelling it stops the bucket first, so partial messages are still delivered.
        """
        if not self._started:
            await self.start()
        await self.server.serve_forever()

    @property
    def address(self) -> Any:
        """The bound ``(host, port)``; the real port when started with ``port=0``."""
        return self.server.address

    @property
    def stats(self) -> BucketStats:
        """A snapshot of the counters."""
        r = self._reassembler.stats
        return BucketStats(
            datagrams=self.server.stats.datagrams_in,
            bytes=self.server.stats.bytes_in,
            messages=self._delivered,
            raw=r.raw,
            framed=r.messages,
            incomplete=r.incomplete,
            cut=r.cut,
            chunks_dropped=r.chunks_dropped,
            chunks_lost=r.chunks_lost,
            duplicates=r.duplicates,
            out_of_order=r.out_of_order,
            malformed=r.malformed,
            partial_messages=self._reassembler.partial_messages,
            partial_bytes=self._reassembler.partial_bytes,
            queue_dropped=self._queue_dropped,
            callback_errors=self._callback_errors,
        )

    # -- consumers --------------------------------------------------------------------------

    def subscribe(
        self, max_queue: int | None = None, max_queue_bytes: int | None = None
    ) -> Subscription:
        """A new consumer queue that receives every message from now on."""
        subscription = Subscription(
            self, max_queue or self.max_queue, max_queue_bytes or self.max_queue_bytes
        )
        if self._closed:
            subscription._closed = True
        else:
            self._subscribers.append(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    def __aiter__(self) -> Subscription:
        if self._default is None:
            raise RuntimeError("this bucket has a callback; use subscribe() to iterate as well")
        return self._default

    # -- datagrams in -------------------------------------------------------------------------

    def _datagram(self, data: bytes, addr: Any) -> None:
        for message in self._reassembler.feed(data, addr, time.time()):
            self._deliver(message)
        if self._reassembler.partial_messages and self._timer is None:
            self._schedule_expiry()

    def _schedule_expiry(self) -> None:
        delay = min(max(self._reassembler.expiry / 2, 0.01), 1.0)
        self._timer = self.server.loop.call_later(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        for message in self._reassembler.expire(time.time()):
            self._deliver(message)
        if self._reassembler.partial_messages and not self._closed:
            self._schedule_expiry()

    def _deliver(self, message: Message) -> None:
        self._delivered += 1
        if self.callback is not None:
            try:
                self.callback(message)
            except Exception as exc:
                self._callback_errors += 1
                logger.error("creosote bucket callback failed: %r", exc, exc_info=exc)
        for subscription in tuple(self._subscribers):
            subscription.put(message)

    def _finished(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for message in self._reassembler.flush(time.time(), "closed"):
            self._deliver(message)
        self._closed = True
        for subscription in tuple(self._subscribers):
            subscription.close()
