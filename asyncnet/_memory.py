"""Drive a handler in memory: no sockets, no ports, no waiting for the kernel.

Twisted's ``StringTransport`` and trio's memory streams, for asyncnet handlers.
:func:`drive` makes the connection a stream server would make for one client, on
a :class:`FakeTransport` that records what the handler writes::

    async def test_upper():
        conn = drive(Upper)                    # LineHandler, CommandHandler, FramedHandler...
        conn.feed(b"hello\\nworld\\n")
        assert await conn.replies() == ["HELLO", "WORLD"]
        conn.feed_eof()
        await conn.wait_closed()               # the handler's finish() has run

Everything else is the real thing: the same connection classes, limits, error
replies, timeouts and counters (``conn.server.stats``) as over TCP.  Call
:func:`drive` from a coroutine (it uses the running loop).

Waiting is on the connection's own signal, never on time: :meth:`DrivenConnection.settled`
returns once the connection is *quiescent* (nothing left to do until more input
arrives).  Deadlines need not cost time either: with ``drive(Handler, clock=FakeClock())``
the idle, line and write timeouts and the linger after a protocol error run on a clock
that only moves when the test calls :meth:`FakeClock.advance`::

    clock = FakeClock()
    conn = drive(Upper, clock=clock, idle_timeout=60)
    clock.advance(61)                      # instantly
    await conn.wait_closed()
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Iterable
from typing import Any

from .servers import BaseHandler, StreamServer

__all__ = ["DrivenConnection", "FakeClock", "FakeTimer", "FakeTransport", "MemoryServer", "drive"]

_PEER = ("127.0.0.1", 50000)
_SOCKNAME = ("127.0.0.1", 9999)


_MAX_CALLS_AT_ONE_INSTANT = 100_000


class FakeTimer:
    """A call scheduled on a :class:`FakeClock` (as ``asyncio.TimerHandle``: cancellable)."""

    __slots__ = ("_args", "_callback", "_cancelled", "_when")

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self._when = when
        self._callback = callback
        self._args = args
        self._cancelled = False

    def when(self) -> float:
        """The clock time the call is due at."""
        return self._when

    def cancel(self) -> None:
        """Do not make the call."""
        self._cancelled = True

    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._cancelled

    def _run(self) -> None:
        self._callback(*self._args)

    def __repr__(self) -> str:
        return f"<FakeTimer when={self._when} {self._callback!r}>"


class FakeClock:
    """A clock for in-memory tests: time stands still until :meth:`advance` moves it.

    Give it to :func:`drive` (``drive(Handler, clock=clock)``) and the connection's
    deadlines -- idle, line and write timeouts, the linger after a protocol error --
    use it instead of the event loop's: a 60 s timeout passes at ``clock.advance(60)``,
    at once.  Everything else (callbacks, tasks, ``asyncio.sleep``) runs on the loop
    as usual.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._order = itertools.count()  # equal deadlines run in the order they were set

    def time(self) -> float:
        """The current time, in seconds."""
        return self._now

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> FakeTimer:
        """Call ``callback(*args)`` once the clock reaches ``when``."""
        timer = FakeTimer(when, callback, args)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> FakeTimer:
        """Call ``callback(*args)`` ``delay`` seconds from now."""
        return self.call_at(self._now + delay, callback, *args)

    @property
    def pending(self) -> int:
        """Calls scheduled and not yet made (nor cancelled)."""
        return sum(1 for _, _, timer in self._timers if not timer.cancelled())

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, making every call that falls due on the way,
        in time order, each at its own time (a call may schedule more: those run too if
        they fall due before the end)."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds})")
        end = self._now + seconds
        timers = self._timers
        same_instant = 0
        while timers and timers[0][0] <= end:
            when, _, timer = heapq.heappop(timers)
            if timer.cancelled():
                continue
            if when > self._now:
                self._now = when
                same_instant = 0
            same_instant += 1
            if same_instant > _MAX_CALLS_AT_ONE_INSTANT:
                # A real loop would spin here until its clock moved on; this one never
                # does: say so instead of hanging the test.
                raise RuntimeError(
                    f"FakeClock: calls keep scheduling calls at {self._now} (last: {timer!r})"
                )
            timer._run()
        self._now = end


class FakeTransport(asyncio.Transport):
    """An in-memory transport that records writes, closes and flow control.

    * ``data`` -- every byte written, in order (``writes`` keeps each ``write()``);
    * ``closed`` / ``aborted`` / ``eof_written`` -- what the protocol asked for;
      ``close()`` and ``abort()`` call ``connection_lost()`` soon, as real
      transports do;
    * ``reading_paused`` -- between ``pause_reading()`` and ``resume_reading()``;
      input given to :meth:`DrivenConnection.feed` meanwhile is held and delivered
      on resume, as a socket's receive buffer would;
    * :meth:`set_write_buffer_size` -- pretend the peer stopped reading (or caught
      up): the protocol gets ``pause_writing()`` / ``resume_writing()``.
    """

    def __init__(
        self,
        protocol: asyncio.BaseProtocol | None = None,
        *,
        peername: Any = _PEER,
        sockname: Any = _SOCKNAME,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__({"peername": peername, "sockname": sockname, **(extra or {})})
        self._protocol = protocol
        self.data = bytearray()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.eof_written = False
        self.reading_paused = False
        self.lost = False
        self.written = asyncio.Event()
        """Set on every write (clear it to wait for the next one)."""
        self.connection_lost_called = asyncio.Event()
        """Set once the protocol's ``connection_lost()`` has run."""
        self._buffered = 0
        self._high = 64 * 1024
        self._low = 16 * 1024
        self._writing_paused = False
        self._held: list[bytes | None] = []  # input while paused; None is end of input

    # -- what the protocol calls ---------------------------------------------------

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.eof_written:
            raise RuntimeError("write() after write_eof()")
        if self.aborted or self.lost:
            return
        chunk = bytes(data)
        self.writes.append(chunk)
        self.data += chunk
        self.written.set()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        self.eof_written = True

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self._lose)

    def abort(self) -> None:
        self.aborted = True
        self.close()

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False
        if self._held:
            asyncio.get_running_loop().call_soon(self._deliver_held)

    def is_reading(self) -> bool:
        return not self.reading_paused and not self.closed

    @property
    def holding(self) -> bool:
        """True while input from the peer waits here, undelivered (reading is paused,
        or its delivery after ``resume_reading()`` has not run yet)."""
        return bool(self._held)

    def get_write_buffer_size(self) -> int:
        return self._buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = 64 * 1024 if high is None else high
        self._low = self._high // 4 if low is None else low

    # -- what the test calls ---------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Deliver ``data`` from the peer (held while reading is paused)."""
        if self.closed:
            return
        if self.reading_paused or self._held:
            self._held.append(bytes(data))
            return
        self.get_protocol().data_received(data)  # type: ignore[attr-defined]

    def receive_eof(self) -> None:
        """The peer half-closes: ``eof_received()`` (after any held input)."""
        if self.closed:
            return
        if self.reading_paused or self._held:
            self._held.append(None)
            return
        self._eof()

    def set_write_buffer_size(self, size: int) -> None:
        """Pretend ``size`` bytes are written but unread by the peer (flow control follows)."""
        self._buffered = size
        protocol = self.get_protocol()
        if not self._writing_paused and size > self._high:
            self._writing_paused = True
            protocol.pause_writing()
        elif self._writing_paused and size <= self._low:
            self._writing_paused = False
            protocol.resume_writing()

    # -- internals -------------------------------------------------------------------

    def _deliver_held(self) -> None:
        while self._held and not self.reading_paused and not self.closed:
            data = self._held.pop(0)
            if data is None:
                self._eof()
            else:
                self.get_protocol().data_received(data)  # type: ignore[attr-defined]

    def _eof(self) -> None:
        keep_open = self.get_protocol().eof_received()  # type: ignore[attr-defined]
        if not keep_open:
            self.close()

    def _lose(self) -> None:
        if not self.lost:
            self.lost = True
            try:
                self.get_protocol().connection_lost(None)
            finally:
                self.connection_lost_called.set()


class MemoryServer(StreamServer):
    """A :class:`~asyncnet.servers.StreamServer` that listens nowhere.

    :meth:`connect` makes a connection on a :class:`FakeTransport`; everything
    else (limits, timeouts, stats, graceful :meth:`stop`) is the stream server's.
    With a ``clock`` (a :class:`FakeClock`), the connections' deadlines run on it.
    """

    def __init__(
        self, handler: Callable[[], BaseHandler], *, clock: FakeClock | None = None, **options: Any
    ) -> None:
        super().__init__(handler, **options)
        self.clock = clock
        """The clock of the connections' deadlines (``None``: the event loop's)."""
        self.deadlines.clock = clock
        self._gone: dict[Any, asyncio.Event] = {}

    async def _bind(self) -> None:
        pass

    @property
    def addresses(self) -> list[Any]:
        """A memory server has no address of its own."""
        return [_SOCKNAME] if self._loop is not None else []

    def attach(self) -> None:
        """Use the running loop without binding anything (what ``start()`` does, minus I/O)."""
        self._loop = asyncio.get_running_loop()
        self._closed_event = asyncio.Event()
        self._started = True

    def connect(self, peername: Any = _PEER) -> DrivenConnection:
        """A new client connection, as if ``peername`` had connected."""
        if self._loop is None:
            self.attach()
        protocol = self._make_connection()
        transport = FakeTransport(protocol, peername=peername, sockname=_SOCKNAME)
        gone = self._gone[protocol] = asyncio.Event()
        protocol.connection_made(transport)
        if protocol not in self._connections:  # refused (max_connections)
            self._gone.pop(protocol, None)
            gone.set()
        return DrivenConnection(self, protocol, transport, gone)

    def _unregister(self, conn: Any) -> None:
        super()._unregister(conn)
        gone = self._gone.pop(conn, None)
        if gone is not None:
            gone.set()

    async def _shutdown(self, grace: float) -> None:
        self._all_gone = asyncio.Event()
        for conn in list(self._connections):
            conn.shutdown()
        if not await self._wait_all_gone(grace):
            for conn in list(self._connections):
                conn.abort()
            await self._wait_all_gone(5.0)
        self.deadlines.stop()
        self._mark_closed()


class DrivenConnection:
    """One in-memory client of a handler: feed it bytes, read what it wrote."""

    def __init__(
        self, server: MemoryServer, protocol: Any, transport: FakeTransport, gone: asyncio.Event
    ) -> None:
        self.server = server
        self._gone = gone
        self.protocol = protocol
        """The connection (what asyncio calls the protocol) the server made for this client."""
        self.transport = transport
        self._read = 0  # offset of output not yet returned by output()/replies()
        handler = protocol.handler
        self.handler: BaseHandler = handler
        self._delimiter = _reply_delimiter(handler)
        self._encoding: str = getattr(handler, "encoding", "utf-8")

    def feed(self, data: bytes) -> None:
        """The client sends ``data`` (handled at once, or when reading resumes)."""
        self.transport.receive(data)

    def feed_eof(self) -> None:
        """The client half-closes its side."""
        self.transport.receive_eof()

    def output(self) -> bytes:
        """Bytes written to the client since the last ``output()`` / ``replies()``."""
        data = bytes(self.transport.data[self._read :])
        self._read = len(self.transport.data)
        return data

    async def replies(self, count: int | None = None, *, timeout: float = 5.0) -> list[str]:
        """The reply lines written since the last call, decoded, without delimiters.

        With ``count``, wait until that many complete lines were written; without,
        wait until the connection is :attr:`quiescent` (no coroutine pending, no
        input held back) and return what it wrote.
        """
        async with asyncio.timeout(timeout):
            if count is None:
                await self.settled()
            else:
                while self._pending_lines() < count and not self.transport.lost:
                    self.transport.written.clear()
                    await _first(self.transport.written.wait(), self._lost())
        return self._take_lines(count)

    @property
    def quiescent(self) -> bool:
        """True when the handler can make no progress without more input: the
        connection is quiescent (``protocol.quiescent``: no handler coroutine running,
        no batch waiting for its turn) and no input waits in the transport to be
        delivered; or the connection is gone."""
        transport = self.transport
        if transport.lost:
            return True
        if transport.holding and not transport.reading_paused:
            return False  # its delivery is scheduled
        return bool(self.protocol.quiescent)

    async def settled(self) -> None:
        """Wait until :attr:`quiescent`: the handler can make no progress without more input."""
        while not self.quiescent:
            if self.transport.holding and not self.transport.reading_paused:
                await asyncio.sleep(0)  # the transport's delivery is scheduled: one turn
            else:
                await _first(self.protocol.wait_quiescent(), self._lost())

    async def wait_closed(self, *, timeout: float = 5.0) -> None:
        """Wait until the connection is closed and the handler's ``finish()`` has run."""
        async with asyncio.timeout(timeout):
            await self._gone.wait()

    @property
    def closed(self) -> bool:
        """True once the server closed (or aborted) this connection."""
        return self.transport.closed

    # -- internals ---------------------------------------------------------------

    async def _lost(self) -> None:
        await self.transport.connection_lost_called.wait()

    def _pending_lines(self) -> int:
        return self.transport.data.count(self._delimiter, self._read)

    def _take_lines(self, count: int | None) -> list[str]:
        data = self.transport.data
        lines: list[str] = []
        delim = self._delimiter
        while count is None or len(lines) < count:
            i = data.find(delim, self._read)
            if i < 0:
                break
            lines.append(bytes(data[self._read : i]).decode(self._encoding, "replace"))
            self._read = i + len(delim)
        return lines


def _reply_delimiter(handler: Any) -> bytes:
    """What ends the handler's replies: a line handler's reply delimiter, a framed
    handler's delimiter terminator, else ``b"\\n"``."""
    for name in ("reply_delimiter", "delimiter", "terminator"):
        value = getattr(handler, name, None)
        value = getattr(value, "delimiter", value)  # a Delimiter terminator
        if isinstance(value, bytes) and value:
            return value
    return b"\n"


async def _first(*aws: Any) -> None:
    """Wait until the first of ``aws`` is done; cancel the tasks made here for coroutines."""
    ours = [asyncio.ensure_future(aw) for aw in aws if asyncio.iscoroutine(aw)]
    theirs = [aw for aw in aws if not asyncio.iscoroutine(aw)]
    try:
        await asyncio.wait([*ours, *theirs], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in ours:
            task.cancel()


def drive(
    handler: Callable[[], BaseHandler], *, clock: FakeClock | None = None, **server_options: Any
) -> DrivenConnection:
    """Connect one in-memory client to ``handler`` (a handler class or factory).

    ``server_options`` are :class:`~asyncnet.servers.StreamServer` options
    (``idle_timeout``, ``max_connections``...); timeouts default to none here.
    With ``clock`` (a :class:`FakeClock`) the connection's deadlines -- those
    timeouts and the linger after a protocol error -- pass when the test advances
    it, not in real time.  Call it from a coroutine.  ``conn.server`` is the server,
    for more clients (``conn.server.connect()``) and for ``await conn.server.stop()``.
    """
    for option in ("idle_timeout", "line_timeout", "write_timeout"):
        server_options.setdefault(option, None)
    server = MemoryServer(handler, clock=clock, **server_options)
    return server.connect()
