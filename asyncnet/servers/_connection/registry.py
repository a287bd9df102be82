"""A server's open connections, linked through the connections themselves.

A ``set`` of 10,000 connections keeps a 32,768-entry table: about 52 bytes per
connection.  Two pointers on each connection (``_prev``/``_next``) do the same job
in 16, with O(1) add and remove.

Two ways to visit the members.  Iterating allows removing the member being visited
(shutdown takes a ``list()`` snapshot anyway).  A *walk* (:meth:`Registry.start_walk`,
:meth:`Registry.step`) is what the deadline sweep uses: it can be spread over
several turns of the event loop, and any removal meanwhile, of any member, is
allowed: the registry moves the walk's position past a member that leaves.
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

    __slots__ = ("_count", "_cursor", "_head")

    def __init__(self) -> None:
        self._head: L | None = None
        self._count = 0
        self._cursor: L | None = None  # the walk's next member (None: no walk)

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
        if item is self._cursor:
            self._cursor = nxt
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

    def start_walk(self) -> None:
        """Begin a walk at the front (one walk at a time: this ends any other)."""
        self._cursor = self._head

    def step(self) -> L | None:
        """The walk's next member, or ``None`` once it has visited them all.

        A member discarded before its turn is not visited; members added during the
        walk (at the front) are not visited either: the walk is over the members of
        its start that are still here.
        """
        item = self._cursor
        if item is not None:
            self._cursor = item._next
        return item
