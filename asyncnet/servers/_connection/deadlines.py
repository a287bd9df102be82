"""Connection deadlines: the idle, partial-line and write-blocked timeouts.

A connection keeps no timer and no deadline object of its own, only three stamps:
the :attr:`DeadlineSweep.tick` at which it was last active, at which an incomplete
line started, at which its peer stopped reading.  A tick is an ``int`` that all
connections active in the same tick share, so stamping is a pointer store: no
``loop.time()`` call and no float per request.

The server's one :class:`DeadlineSweep` advances the tick every ``resolution``
seconds (1/32 of the shortest timeout) and then walks the open connections once,
closing those whose deadline has passed.  A timeout therefore fires between one and
two ticks late, never early (while the event loop keeps time: a callback stalled
for longer than a tick stamps with the tick it was due in).

The walk checks :attr:`DeadlineSweep.chunk` connections per turn of the event loop,
all against the tick it started at, so that a server with 100,000 connections does
not stall everyone else for 10 ms each tick.  Idle connections cost
the walk about 0.1 us each per tick; at the defaults (60 s line and write timeouts,
so a tick is ~1.9 s) 10,000 of them cost the loop about 1 ms every 1.9 s, spread
over six turns; 100,000 about 11 ms over 51 turns of at most 0.3 ms each.

Time comes from a :class:`Clock`: the running event loop, unless a test kit sets
:attr:`DeadlineSweep.clock` to one it advances by hand (``asyncnet.testing.FakeClock``),
so that a 60 s idle timeout or the linger after a protocol error costs no real time.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Protocol

from ...errors import StateError

__all__ = ["Cancellable", "Clock", "Connections", "DeadlineSweep", "Timed", "ticks_for"]


class Cancellable(Protocol):
    """A scheduled call that can be called off (``asyncio.TimerHandle`` is one)."""

    def cancel(self) -> None:
        """Do not make the call."""
        ...


class Clock(Protocol):
    """Where deadlines get their time and timers: an event loop is one."""

    def time(self) -> float:
        """The current time, in seconds (monotonic)."""
        ...

    def call_at(self, when: float, callback: Callable[[], object], /) -> Cancellable:
        """Call ``callback`` once :meth:`time` reaches ``when``."""
        ...

    def call_later(self, delay: float, callback: Callable[[], object], /) -> Cancellable:
        """Call ``callback`` ``delay`` seconds from now."""
        ...


class Timed(Protocol):
    """What a connection offers the sweep: its stamps and how to close it."""

    _conn_closed: bool
    _seen: int
    """Tick of the last read or write (the idle timeout's clock)."""
    _partial_since: int | None
    """Tick since which an incomplete line is buffered (the line timeout's clock)."""
    _write_blocked_since: int | None
    """Tick since which the peer has not read our output (the write timeout's clock)."""

    def _busy(self) -> bool:
        """True while the handler is working, which does not count as idle."""
        ...

    def _timed_out(self, which: str, seconds: float, *, abort: bool = False) -> None:
        """Close the connection because deadline ``which`` (of ``seconds``) passed."""
        ...


class Connections(Protocol):
    """What the sweep walks: the server's registry (see registry.py)."""

    def __bool__(self) -> bool:
        """True while there is at least one connection."""
        ...

    def start_walk(self) -> None:
        """Begin a walk at the first connection."""
        ...

    def step(self) -> Timed | None:
        """The walk's next connection, or ``None`` at its end."""
        ...


def ticks_for(timeout: float | None, resolution: float) -> int | None:
    """Ticks after a stamp at which ``timeout`` has surely passed (``None``: never).

    A stamp of tick ``s`` means "some time in ``[s, s+1)`` ticks", so the deadline
    is due once ``timeout`` fits between the end of that tick and the current one.
    """
    if timeout is None:
        return None
    return 1 + math.ceil(timeout / resolution - 1e-9)


class DeadlineSweep:
    """A server's clock for its connections' timeouts: one loop timer, one walk per tick.

    ``connections`` is the server's registry (walked, never changed here).  The timer
    runs, on the running loop, only while there are connections: :meth:`start` is
    called for each new one and is cheap when the clock already runs.
    """

    __slots__ = (
        "_clock",
        "_connections",
        "_handle",
        "_idle",
        "_idle_ticks",
        "_line",
        "_line_ticks",
        "_loop",
        "_write",
        "_write_ticks",
        "chunk",
        "resolution",
        "tick",
    )

    def __init__(
        self,
        connections: Connections,
        *,
        idle: float | None,
        line: float | None,
        write: float | None,
    ) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clock: Clock | None = None  # None: the running loop's
        self._connections = connections
        self._idle, self._line, self._write = idle, line, write
        shortest = min((t for t in (idle, line, write) if t is not None), default=None)
        self.resolution = 1.0 if shortest is None else max(0.001, shortest / 32)
        self._idle_ticks = ticks_for(idle, self.resolution)
        self._line_ticks = ticks_for(line, self.resolution)
        self._write_ticks = ticks_for(write, self.resolution)
        self._handle: Cancellable | None = None  # the next tick, or the walk's next turn
        self.tick = 0
        """The current tick while the clock runs: what a connection stamps on activity."""
        self.chunk = 2000
        """Connections checked per turn of the event loop (0.2 to 0.3 ms of work)."""

    @property
    def enabled(self) -> bool:
        """True when at least one timeout is set (else there is nothing to sweep)."""
        return self._idle is not None or self._line is not None or self._write is not None

    @property
    def running(self) -> bool:
        """True while the clock ticks (there were connections at the last tick)."""
        return self._handle is not None

    @property
    def clock(self) -> Clock | None:
        """Where time comes from: ``None`` (the default) for the running event loop."""
        return self._clock

    @clock.setter
    def clock(self, clock: Clock | None) -> None:
        if self._handle is not None:
            raise StateError("the deadline clock cannot change while it runs")
        self._clock = clock

    def _time(self) -> Clock:
        clock = self._clock
        if clock is not None:
            return clock
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def call_later(self, delay: float, callback: Callable[[], object]) -> Cancellable:
        """Call ``callback`` ``delay`` seconds from now on this sweep's clock: a
        connection's one-off deadline (the linger after a protocol error)."""
        return self._time().call_later(delay, callback)

    def start(self) -> None:
        """Make sure the clock runs (a connection was registered)."""
        if self._handle is None and self.enabled:
            self._loop = asyncio.get_running_loop()
            clock = self._time()
            self.tick = tick = int(clock.time() / self.resolution)
            self._handle = clock.call_at((tick + 1) * self.resolution, self._advance)

    def stop(self) -> None:
        """Stop the clock (the server is closing)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _advance(self) -> None:
        self._handle = None
        tick = int(self._time().time() / self.resolution)
        # Never the same tick twice: this timer is due when the next tick begins, but
        # float rounding (or a loop that runs timers a hair early) can put the time just
        # before that, and the same tick again would schedule the same instant forever.
        self.tick = tick if tick > self.tick else self.tick + 1
        if self._connections:  # with none left the clock stops until the next one
            self._connections.start_walk()
            self._walk()

    def _walk(self) -> None:
        """Check the next :attr:`chunk` connections; then the next turn, or tick."""
        loop = self._loop
        assert loop is not None
        tick = self.tick
        step = self._connections.step
        for _ in range(self.chunk):
            conn = step()
            if conn is None:
                self._handle = self._time().call_at((tick + 1) * self.resolution, self._advance)
                return
            if not conn._conn_closed:
                try:
                    self.check(conn, tick)
                except Exception as exc:  # one connection's bug must not skip the others
                    loop.call_exception_handler(
                        {"message": "connection deadline check failed", "exception": exc}
                    )
        self._handle = loop.call_soon(self._walk)

    def check(self, conn: Timed, tick: int) -> None:
        """Close ``conn`` if one of its deadlines has passed at ``tick``."""
        if (
            self._write_ticks is not None
            and (blocked := conn._write_blocked_since) is not None
            and tick - blocked >= self._write_ticks
        ):
            assert self._write is not None
            conn._timed_out("write", self._write, abort=True)
        elif self._idle_ticks is not None and tick - conn._seen >= self._idle_ticks:
            if conn._busy():  # a handler at work is not an idle connection
                conn._seen = tick
            else:
                assert self._idle is not None
                conn._timed_out("idle", self._idle)
        elif (
            self._line_ticks is not None
            and (partial := conn._partial_since) is not None
            and tick - partial >= self._line_ticks
        ):
            assert self._line is not None
            conn._timed_out("line", self._line)
