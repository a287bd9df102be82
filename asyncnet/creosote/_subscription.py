"""One consumer's bounded queue of a bucket's messages."""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Self

from .._lifecycle import Closable
from ._protocol import Message

if TYPE_CHECKING:
    from ._bucket import Bucket

__all__ = ["Subscription"]


class Subscription(Closable):
    """One consumer's bounded queue of messages: ``async for message in subscription``.

    The iteration ends when the bucket closes (after the queued messages) or when
    :meth:`close` is called.  When more than ``max_queue`` messages, or more than
    ``max_queue_bytes`` bytes of them, wait, the oldest are dropped and counted in
    :attr:`dropped`.
    """

    def __init__(self, bucket: Bucket, max_queue: int, max_queue_bytes: int) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, not {max_queue!r}")
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
