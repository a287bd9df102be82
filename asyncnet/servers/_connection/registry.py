"""A server's open connections, linked through the connections themselves.

A ``set`` of 10,000 connections keeps a 32,768-entry table: about 52 bytes per
connection.  Two pointers on each connection (``_prev``/``_next``) do the same job
in 16, with O(1) add and remove.  Walking the list is what the deadline sweep does
once per tick, and removing the connection being visited is allowed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["Linked", "Registry"]


class Linked(Protocol):
    """What a registry member carries: its neighbours (``None`` at either end).

    (``Any``: a member declares them with its own type, and protocol attributes are
    invariant.)
    """

    _prev: Any
    _next: Any


L = TypeVar("L", bound=Linked)


class Registry(Generic[L]):
    """An ordered collection of connections: add, discard, ``in``, ``len``, iterate."""

    __slots__ = ("_count", "_head")

    def __init__(self) -> None:
        self._head: L | None = None
        self._count = 0

    def add(self, item: L) -> None:
        """Add ``item`` (not already a member: its links must be ``None``) at the front."""
        head = self._head
        item._prev = None
        item._next = head
        if head is not None:
            head._prev = item
        self._head = item
        self._count += 1

    def discard(self, item: L) -> bool:
        """Remove ``item`` if it is a member; return whether it was."""
        if item not in self:
            return False
        prev, nxt = item._prev, item._next
        if prev is None:
            self._head = nxt
        else:
            prev._next = nxt
        if nxt is not None:
            nxt._prev = prev
        item._prev = item._next = None
        self._count -= 1
        return True

    def __contains__(self, item: object) -> bool:
        return item is self._head or getattr(item, "_prev", None) is not None

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._head is not None

    def __iter__(self) -> Iterator[L]:
        item = self._head
        while item is not None:
            nxt = item._next  # read first: the caller may discard ``item``
            yield item
            item = nxt
