"""Connection deadlines: the idle, partial-line and write-blocked timeouts.

Each connection owns one :class:`Deadlines`; the server owns one
:class:`DeadlineWheel` that all of them share.  A deadline is re-armed lazily:
activity only moves a timestamp, and the timer, when it fires, works out whether
anything is really due (and if not, where the next deadline lies).
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..stream import StreamServer

__all__ = ["DeadlineWheel", "Deadlines", "Timed"]


class Timed(Protocol):
    """What a connection offers its :class:`Deadlines`."""

    _conn_closed: bool
    _server: StreamServer
    _loop: asyncio.AbstractEventLoop
    _last_activity: float
    """Loop time of the last read or write (the idle timeout's clock)."""
    _partial_since: float | None
    """Loop time since when an incomplete line is buffered (the line timeout's clock)."""

    def _busy(self) -> bool:
        """True while the handler is working, which does not count as idle."""
        ...

    def _timed_out(self, which: str, seconds: float, *, abort: bool = False) -> None:
        """Close the connection because deadline ``which`` (of ``seconds``) passed."""
        ...


class _Slot(set["Deadlines"]):
    """The connections due in one slot, and the slot's key (one float for all of them)."""

    __slots__ = ("key",)

    def __init__(self, key: float) -> None:
        super().__init__()
        self.key = key


class DeadlineWheel:
    """Shared timers for a server's connections: one loop timer per time slot.

    A TimerHandle per idle connection costs about 0.6 KiB on uvloop; most idle
    connections of a server have deadlines close together.  Deadlines are rounded
    up to ``resolution`` seconds, and every connection due in that slot is checked
    by one loop timer.  A timeout therefore fires up to ``resolution`` late.
    """

    __slots__ = ("_handles", "_loop", "_slots", "resolution")

    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float) -> None:
        self._loop = loop
        self.resolution = resolution
        self._slots: dict[float, _Slot] = {}
        self._handles: dict[float, asyncio.TimerHandle] = {}

    @classmethod
    def for_timeouts(
        cls, loop: asyncio.AbstractEventLoop, *timeouts: float | None
    ) -> DeadlineWheel:
        """A wheel whose slots are 1/32 of the shortest timeout (1 ms .. 1 s)."""
        shortest = min((t for t in timeouts if t is not None), default=1.0)
        return cls(loop, min(1.0, max(0.001, shortest / 32)))

    def slot(self, when: float) -> float:
        """The slot (a loop time) a deadline ``when`` falls in."""
        return math.ceil(when / self.resolution) * self.resolution

    def add(self, deadlines: Deadlines, when: float) -> float:
        """Check ``deadlines`` at ``when`` (rounded up to a slot); return the slot."""
        key = self.slot(when)
        members = self._slots.get(key)
        if members is None:
            members = self._slots[key] = _Slot(key)
            self._handles[key] = self._loop.call_at(key, self._fire, key)
        members.add(deadlines)
        # The slot's own key: 10,000 idle connections keep one float, not 10,000.
        return members.key

    def remove(self, deadlines: Deadlines, key: float) -> None:
        """Forget ``deadlines`` in slot ``key`` (cancelling the slot's timer if empty)."""
        members = self._slots.get(key)
        if members is None:
            return
        members.discard(deadlines)
        if not members:
            del self._slots[key]
            self._handles.pop(key).cancel()

    def _fire(self, key: float) -> None:
        self._handles.pop(key, None)
        for deadlines in self._slots.pop(key, ()):
            try:
                deadlines.check()
            except Exception as exc:  # one connection's bug must not skip the others
                self._loop.call_exception_handler(
                    {"message": "connection deadline check failed", "exception": exc}
                )


class Deadlines:
    """One connection's idle, partial-line and write-blocked deadlines.

    The connection updates the timestamps (its own ``_last_activity`` and
    ``_partial_since``, which the request path touches without reaching into a second
    object, and ``write_blocked_since`` here); the wheel calls :meth:`check`, which closes the
    connection through ``_timed_out()`` or re-arms for the next deadline.
    """

    __slots__ = (
        "_conn",
        "_slot",
        "write_blocked_since",
    )

    def __init__(self, conn: Timed) -> None:
        self._conn = conn
        self._slot: float | None = None  # our slot in the server's deadline wheel
        self.write_blocked_since: float | None = None

    # The connection's server and loop, not copies: two pointers fewer for every
    # idle connection, on paths that run once per connection or per timer.
    @property
    def _server(self) -> StreamServer:
        return self._conn._server

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return self._conn._loop

    def arm(self) -> None:
        """(Re)schedule the check for the earliest deadline now pending."""
        server = self._server
        if (
            server.idle_timeout is None
            and server.line_timeout is None
            and server.write_timeout is None
        ):
            return
        self._schedule(self._next_deadline())

    def cancel(self) -> None:
        """Stop checking (the connection is gone)."""
        if self._slot is not None:
            self._server.deadline_wheel.remove(self, self._slot)
            self._slot = None

    def partial_line(self, partial: bool) -> None:
        """Note whether an incomplete line is buffered (the line timeout's clock)."""
        conn = self._conn
        if not partial:
            conn._partial_since = None
        elif conn._partial_since is None:
            conn._partial_since = now = self._loop.time()
            # Lazily, like the idle deadline: a timer due no later than the new line
            # deadline re-checks everything when it fires, so only an earlier
            # deadline needs a new timer (a client sending each line in two reads
            # would otherwise cost a timer per line).
            server = self._server
            assert server.line_timeout is not None
            slot = self._slot
            if slot is None or slot > server.deadline_wheel.slot(now + server.line_timeout):
                self.arm()

    def write_blocked(self) -> None:
        """The peer stopped taking our output (``pause_writing``): start its clock."""
        self.write_blocked_since = self._loop.time()
        self.arm()

    def write_unblocked(self) -> None:
        """The peer reads again (``resume_writing``)."""
        self.write_blocked_since = None

    def _schedule(self, when: float) -> None:
        wheel = self._server.deadline_wheel
        if self._slot is not None:
            wheel.remove(self, self._slot)
        self._slot = None if when == math.inf else wheel.add(self, when)

    def _next_deadline(self) -> float:
        server = self._server
        when = math.inf
        if server.write_timeout is not None and self.write_blocked_since is not None:
            when = min(when, self.write_blocked_since + server.write_timeout)
        if server.idle_timeout is not None:
            base = self._loop.time() if self._conn._busy() else self._conn._last_activity
            when = min(when, base + server.idle_timeout)
        partial_since = self._conn._partial_since
        if server.line_timeout is not None and partial_since is not None:
            when = min(when, partial_since + server.line_timeout)
        return when

    def check(self) -> None:
        """Called by the wheel: close the connection if a deadline has passed."""
        self._slot = None
        conn = self._conn
        if conn._conn_closed:
            return
        now = self._loop.time()
        server = self._server
        if (
            server.write_timeout is not None
            and self.write_blocked_since is not None
            and now >= self.write_blocked_since + server.write_timeout
        ):
            conn._timed_out("write", server.write_timeout, abort=True)
            return
        if (
            server.idle_timeout is not None
            and not conn._busy()
            and now >= conn._last_activity + server.idle_timeout
        ):
            conn._timed_out("idle", server.idle_timeout)
            return
        if (
            server.line_timeout is not None
            and conn._partial_since is not None
            and now >= conn._partial_since + server.line_timeout
        ):
            conn._timed_out("line", server.line_timeout)
            return
        self._schedule(self._next_deadline())
