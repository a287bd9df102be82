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
messages are bounded and expire, and each consumer's queue (a :class:`Subscription`,
which the bucket fills and the consumer drains) is bounded: the oldest message is
dropped, and counted, when a consumer falls behind.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Self

from .._boundary import translate_os_error
from .._lifecycle import Closable, Endpoint
from ..errors import ConfigurationError, StateError, format_peer
from ..servers import DatagramHandler, DatagramServer
from ._protocol import MAX_MESSAGE_SIZE, Message, Reassembler

logger = logging.getLogger("asyncnet.creosote")

__all__ = ["Bucket", "BucketStats", "Subscription"]


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


class Subscription(Closable):
    """One consumer's bounded queue of messages: ``async for message in subscription``.

    The iteration ends when the bucket closes (after the queued messages) or when
    :meth:`close` is called.  When more than ``max_queue`` messages, or more than
    ``max_queue_bytes`` bytes of them, wait, the oldest are dropped and counted in
    :attr:`dropped`.
    """

    def __init__(self, bucket: Bucket, max_queue: int, max_queue_bytes: int) -> None:
        if max_queue < 1:
            raise ConfigurationError(f"max_queue must be >= 1, not {max_queue!r}")
        self._bucket = bucket
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.dropped = 0
        self._bytes = 0
        self._items: collections.deque[Message] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def put(self, message: Message) -> None:
        """Queue a message (the bucket calls this; dropping the oldest when full)."""
        if self._closed:
            return
        self._items.append(message)
        self._bytes += len(message.data)
        items = self._items
        while len(items) > self.max_queue or (
            self._bytes > self.max_queue_bytes and len(items) > 1
        ):
            self._bytes -= len(items.popleft().data)
            self.dropped += 1
            self._bucket._queue_dropped += 1
        self._wake()

    def __len__(self) -> int:
        return len(self._items)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        """Stop receiving; iteration ends once the queued messages are consumed."""
        self._closed = True
        self._bucket._unsubscribe(self)
        self._wake()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Message:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = self._items.popleft()
        self._bytes -= len(message.data)
        return message


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
            subscription.close()  # the bucket is gone: iteration ends at once
        else:
            self._subscribers.append(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    def __aiter__(self) -> Subscription:
        if self._default is None:
            raise StateError("this bucket has a callback; use subscribe() to iterate as well")
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
