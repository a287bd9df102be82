"""The connection deadlines (one sweep per server, three stamps per connection), the
connection registry and the peer read on first use (RELIABILITY.md S2, S9)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncnet import LineClient, LineHandler, tcp_server
from asyncnet.demos.upper import Upper
from asyncnet.servers._connection.deadlines import DeadlineSweep, ticks_for
from asyncnet.servers._connection.registry import Registry
from asyncnet.testing import FakeClock

from .helpers import read_all

# -- the tick arithmetic, without sockets ------------------------------------------


@given(
    timeout=st.floats(min_value=0.001, max_value=3600, allow_nan=False),
    resolution=st.floats(min_value=0.001, max_value=2.0, allow_nan=False),
)
def test_a_deadline_is_never_due_early_and_at_most_two_ticks_late(
    timeout: float, resolution: float
) -> None:
    """A stamp at tick s means activity somewhere in [s, s+1): due at s + ticks."""
    ticks = ticks_for(timeout, resolution)
    assert ticks is not None
    # The latest the activity can have been is the end of its tick: (ticks - 1) ticks
    # must cover the timeout (a hair of float slack), and one tick less must not.
    assert (ticks - 1) * resolution >= timeout * (1 - 1e-9)
    assert (ticks - 2) * resolution < timeout


def test_no_timeout_means_no_deadline() -> None:
    assert ticks_for(None, 0.5) is None


# -- the registry, without sockets -------------------------------------------------


class Member:
    def __init__(self, name: str) -> None:
        self.name = name
        self._prev: Member | None = None
        self._next: Member | None = None


def test_registry_add_discard_contains_len_and_order() -> None:
    registry: Registry[Member] = Registry()
    a, b, c = Member("a"), Member("b"), Member("c")
    assert not registry
    assert len(registry) == 0
    assert a not in registry
    for member in (a, b, c):
        registry.add(member)
    assert [m.name for m in registry] == ["c", "b", "a"]
    assert len(registry) == 3
    assert all(m in registry for m in (a, b, c))
    assert registry.discard(b) is True
    assert registry.discard(b) is False  # twice is harmless
    assert [m.name for m in registry] == ["c", "a"]
    assert b not in registry
    assert registry.discard(c) is True  # the head
    assert registry.discard(a) is True  # the last one
    assert not registry
    assert len(registry) == 0
    assert list(registry) == []
    registry.add(b)  # a discarded member can come back
    assert list(registry) == [b]


def test_registry_walk_survives_discarding_the_member_being_visited() -> None:
    registry: Registry[Member] = Registry()
    members = [Member(str(i)) for i in range(5)]
    for member in members:
        registry.add(member)
    seen = []
    for member in registry:
        seen.append(member.name)
        registry.discard(member)
    assert seen == ["4", "3", "2", "1", "0"]
    assert len(registry) == 0


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 7)), max_size=60))
def test_registry_matches_a_set_for_any_sequence_of_adds_and_discards(
    ops: list[tuple[bool, int]],
) -> None:
    registry: Registry[Member] = Registry()
    pool = [Member(str(i)) for i in range(8)]
    model: set[int] = set()
    for add, index in ops:
        member = pool[index]
        if add and index not in model:
            registry.add(member)
            model.add(index)
        elif not add:
            assert registry.discard(member) is (index in model)
            model.discard(index)
        assert len(registry) == len(model)
        assert {int(m.name) for m in registry} == model
        assert all((m in registry) is (int(m.name) in model) for m in pool)


def test_a_walk_skips_members_that_leave_before_their_turn_and_new_ones() -> None:
    """Any member may leave during a walk, the next one too (the walk moves past it)."""
    registry: Registry[Member] = Registry()
    a, b, c, d = (Member(name) for name in "abcd")
    for member in (d, c, b, a):
        registry.add(member)  # order: a b c d
    registry.start_walk()
    assert registry.step() is a
    registry.discard(b)  # the walk's next member
    registry.add(Member("new"))  # joins at the front: not this walk's
    assert registry.step() is c
    registry.discard(c)  # the member being visited
    registry.discard(d)  # the last one
    assert registry.step() is None
    assert registry.step() is None  # and it stays over


@given(
    st.integers(0, 8),
    st.lists(st.tuples(st.sampled_from(["step", "discard", "add"]), st.integers(0, 11))),
)
def test_a_walk_visits_each_starting_member_still_there_once_in_order(
    size: int, ops: list[tuple[str, int]]
) -> None:
    registry: Registry[Member] = Registry()
    pool = [Member(str(i)) for i in range(12)]
    for member in reversed(pool[:size]):
        registry.add(member)
    members = set(range(size))
    pending = list(range(size))  # the model: what the walk has still to visit, in order
    registry.start_walk()
    for op, index in ops:
        if op == "step":
            got = registry.step()
            expected = pending.pop(0) if pending else None
            assert (None if got is None else int(got.name)) == expected
        elif op == "discard":
            assert registry.discard(pool[index]) is (index in members)
            members.discard(index)
            if index in pending:
                pending.remove(index)
        elif index not in members:
            registry.add(pool[index])
            members.add(index)
    assert [int(m.name) for m in iter(registry.step, None)] == pending


# -- the sweep's walk, without sockets -----------------------------------------------


class TimeoutLog(list[int]):
    """Which members timed out, in order; ``full`` is set once ``expected`` have."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.full = asyncio.Event()

    def note(self, name: int) -> None:
        self.append(name)
        if len(self) >= self.expected:
            self.full.set()


class Stale:
    """A registry member whose idle deadline passed long ago; notes when it times out."""

    def __init__(self, name: int, log: TimeoutLog) -> None:
        self.name = name
        self.log = log
        self._prev: Stale | None = None
        self._next: Stale | None = None
        self._conn_closed = False
        self._seen = -1_000_000
        self._partial_since: int | None = None
        self._write_blocked_since: int | None = None
        self.on_timeout: Any = None

    def _busy(self) -> bool:
        return False

    def _timed_out(self, which: str, seconds: float, *, abort: bool = False) -> None:
        self._conn_closed = True  # as a closing transport does
        self.log.note(self.name)
        if self.on_timeout is not None:
            self.on_timeout()


def _stale_registry(count: int, log: TimeoutLog) -> tuple[Registry[Stale], list[Stale]]:
    registry: Registry[Stale] = Registry()
    members = [Stale(i, log) for i in range(count)]
    for member in reversed(members):
        registry.add(member)  # walk order 0, 1, 2...
    return registry, members


async def _sweep_until_full(sweep: DeadlineSweep, log: TimeoutLog) -> None:
    sweep.start()
    try:
        async with asyncio.timeout(5):
            await log.full.wait()
    finally:
        sweep.stop()


async def test_the_walk_lets_the_loop_run_between_chunks() -> None:
    """A tick's walk takes ``chunk`` connections per turn: a callback scheduled during
    the first chunk runs before the second."""
    log = TimeoutLog(5)
    registry, members = _stale_registry(5, log)
    sweep = DeadlineSweep(registry, idle=0.032, line=None, write=None)
    sweep.chunk = 2
    seen_by_callback: list[list[int]] = []
    loop = asyncio.get_running_loop()
    members[0].on_timeout = lambda: loop.call_soon(lambda: seen_by_callback.append(list(log)))
    await _sweep_until_full(sweep, log)
    assert log == [0, 1, 2, 3, 4]
    assert seen_by_callback == [[0, 1]]


async def test_the_walk_survives_a_visitor_removing_the_next_connection() -> None:
    """Closing one connection may take another out of the registry at once."""
    log = TimeoutLog(5)
    registry, members = _stale_registry(6, log)
    members[1].on_timeout = lambda: registry.discard(members[2])
    sweep = DeadlineSweep(registry, idle=0.032, line=None, write=None)
    await _sweep_until_full(sweep, log)
    assert log == [0, 1, 3, 4, 5]


class OneMember:
    """The sweep's view of a registry with one member; notes the tick of each walk."""

    def __init__(self, member: Stale) -> None:
        self.member = member
        self.sweep: DeadlineSweep | None = None
        self.walks: list[int] = []
        self._left: Stale | None = None

    def __bool__(self) -> bool:
        return True

    def start_walk(self) -> None:
        assert self.sweep is not None
        self.walks.append(self.sweep.tick)
        self._left = self.member

    def step(self) -> Stale | None:
        member, self._left = self._left, None
        return member


async def test_each_tick_advances_the_tick_even_when_float_rounding_lags() -> None:
    """A resolution such as 0.3 / 32 is not exact in binary: the time a tick's timer
    runs at, divided by it, may round to the tick before.  The sweep still moves on by
    one tick per timer (it used to schedule the same instant again: forever on a fake
    clock, a spin on a real one)."""
    log = TimeoutLog(1)
    member = Stale(0, log)
    member._seen = 0
    connections = OneMember(member)
    sweep = connections.sweep = DeadlineSweep(connections, idle=0.3, line=None, write=None)
    clock = FakeClock()
    sweep.clock = clock
    sweep.start()
    clock.advance(0.3)
    assert connections.walks == list(range(1, len(connections.walks) + 1))
    assert len(connections.walks) >= 31  # 0.3 s: 32 ticks, give or take the rounding
    assert log == []  # not idle yet: that takes 33 ticks
    clock.advance(2 * sweep.resolution)
    assert log == [0]
    sweep.stop()


# -- the sweep, on real sockets ----------------------------------------------------


@pytest.mark.all_loops
async def test_a_client_that_keeps_talking_outlives_the_idle_timeout() -> None:
    """Activity moves the idle clock: 1.2 s of requests 0.1 s apart, idle_timeout 0.3
    (the seconds on a fake clock, the requests over a real socket)."""
    clock = FakeClock()
    server = tcp_server(Upper, idle_timeout=0.3)
    server.deadlines.clock = clock
    async with server, await LineClient.connect(*server.address, timeout=5) as client:
        for i in range(12):
            assert await client.request(f"ping {i}") == f"PING {i}"
            clock.advance(0.1)  # the client's own pace
        assert server.stats.connections_timed_out == 0
        clock.advance(0.3 + 2 * server.deadlines.resolution)  # silence, then it is idle
        assert await client.read_line() is None
        assert server.stats.connections_timed_out == 1


@pytest.mark.all_loops
async def test_an_idle_client_is_closed_not_early_and_within_two_ticks() -> None:
    """S9's idle twin: closed after idle_timeout, at most two ticks (plus slack) later."""
    async with tcp_server(
        Upper, idle_timeout=0.32, line_timeout=None, write_timeout=None
    ) as server:
        tick = server.deadlines.resolution
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"hi\n")
        assert await reader.readline() == b"HI\n"
        answered = time.monotonic()
        assert await read_all(reader, timeout=5) == b""
        waited = time.monotonic() - answered
        # Measured from the reply's arrival, a little after the server stamped it: a
        # millisecond of slack for that, far less than the tick an early close would be.
        assert 0.32 - 0.001 <= waited < 0.32 + 2 * tick + 0.5
        assert server.stats.connections_timed_out == 1
        writer.close()


@pytest.mark.all_loops
async def test_idle_clients_beyond_one_chunk_are_all_closed() -> None:
    """The walk spread over several turns still reaches every connection."""
    async with tcp_server(Upper, idle_timeout=0.2, line_timeout=None, write_timeout=None) as server:
        server.deadlines.chunk = 2
        clients = [await asyncio.open_connection(*server.address) for _ in range(7)]
        for reader, writer in clients:
            writer.write(b"hi\n")
            assert await reader.readline() == b"HI\n"
        for reader, writer in clients:
            assert await read_all(reader, timeout=5) == b""
            writer.close()
        assert server.stats.connections_timed_out == 7


class Slow(LineHandler):
    """Replies once the test says the work is done (``started`` set when it begins)."""

    started: asyncio.Event
    done: asyncio.Event

    async def handle_line(self, line: str) -> str:
        self.started.set()
        await self.done.wait()  # the work itself: longer than idle_timeout, see the test
        return line.upper()


@pytest.mark.all_loops
async def test_a_handler_at_work_is_not_an_idle_connection() -> None:
    """Three idle timeouts pass (on a fake clock) while the handler works: not idle."""
    Slow.started, Slow.done = asyncio.Event(), asyncio.Event()
    clock = FakeClock()
    server = tcp_server(Slow, idle_timeout=0.2)
    server.deadlines.clock = clock
    async with server, await LineClient.connect(*server.address, timeout=5) as client:
        request = asyncio.create_task(client.request("slow"))
        await asyncio.wait_for(Slow.started.wait(), 5)
        clock.advance(0.6)
        Slow.done.set()
        assert await request == "SLOW"
        assert server.stats.connections_timed_out == 0


@pytest.mark.slow
@pytest.mark.all_loops
async def test_a_completed_line_stops_the_line_clock() -> None:
    """S9's other side: lines that arrive in pieces are fine while each completes in time.

    Each line is finished 0.1 s after it starts, 0.9 s inside the line timeout (room for
    a busy machine), while the pieces of all twelve add up to 1.2 s: a clock that kept
    running from one line to the next would cut the connection."""
    async with (
        tcp_server(Upper, line_timeout=1.0, idle_timeout=30) as server,
    ):
        reader, writer = await asyncio.open_connection(*server.address)
        for i in range(12):
            writer.write(b"par")
            await asyncio.sleep(0.1)
            writer.write(f"t{i}\n".encode())
            assert await reader.readline() == f"PART{i}\n".encode()
            await asyncio.sleep(0.1)
        assert server.stats.connections_timed_out == 0
        writer.close()
        await writer.wait_closed()


@pytest.mark.all_loops
async def test_the_clock_restarts_for_a_connection_after_an_empty_spell() -> None:
    """With no connection the sweep stops; the next connection starts it again."""
    async with tcp_server(Upper, idle_timeout=0.2, line_timeout=None, write_timeout=None) as server:
        async with await LineClient.connect(*server.address, timeout=5) as first:
            assert await first.request("a") == "A"
        await server.events.wait_for(lambda: server.stats.connections_active == 0, timeout=5)
        # The sweep's next tick is due within one tick, before this sleep ends (timers
        # fire in order), and finding no connection it stops the clock.
        await asyncio.sleep(4 * server.deadlines.resolution)
        assert not server.deadlines.running
        reader, writer = await asyncio.open_connection(*server.address)
        assert await read_all(reader, timeout=5) == b""
        assert server.stats.connections_timed_out == 1
        writer.close()


def test_no_timeouts_means_no_clock() -> None:
    server = tcp_server(Upper, idle_timeout=None, line_timeout=None, write_timeout=None)
    assert not server.deadlines.enabled


def test_the_tick_is_a_32nd_of_the_shortest_timeout() -> None:
    server = tcp_server(Upper, idle_timeout=300, line_timeout=64, write_timeout=None)
    assert server.deadlines.resolution == 2.0


# -- the peer, read on first use ---------------------------------------------------


class PeerKeeper(LineHandler):
    """Replies with the peer it sees; remembers it at finish() (after the connection)."""

    finished: list[Any] = []

    def handle_line(self, line: str) -> str:
        return repr(self.peer)

    def finish(self) -> None:
        self.finished.append(self.peer)


@pytest.mark.all_loops
async def test_the_peer_is_the_clients_address() -> None:
    async with (
        tcp_server(PeerKeeper) as server,
        await LineClient.connect(*server.address, timeout=5) as client,
    ):
        assert await client.request("who") == repr(tuple(client.local_address[:2]))


@pytest.mark.all_loops
async def test_the_peer_is_known_in_finish_after_a_reset() -> None:
    """A peer never read during the connection is still there after an RST."""

    got_line = asyncio.Event()

    class Fresh(PeerKeeper):
        finished: list[Any] = []

        def handle_line(self, line: str) -> None:
            got_line.set()  # and never looks at self.peer while connected

    async with tcp_server(Fresh) as server:
        loop = asyncio.get_running_loop()
        client = socket.socket()
        client.setblocking(False)
        await loop.sock_connect(client, server.address)
        await loop.sock_sendall(client, b"hello\n")
        async with asyncio.timeout(5):
            await got_line.wait()
        expected = client.getsockname()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # RST
        await server.events.wait_for(lambda: server.stats.connections_active == 0, timeout=5)
    assert Fresh.finished == [expected]


def test_handler_classes_keep_the_interpreters_fast_attribute_lookup() -> None:
    """No handler base defines __getattr__ or __getattribute__: CPython stops
    specializing every attribute and method lookup on a class that does (handle_line on
    the request path included, about 0.1 us per request), so ``peer`` is a property."""
    from asyncnet import BaseHandler, CommandHandler, DatagramHandler, StreamHandler

    for cls in (BaseHandler, LineHandler, StreamHandler, DatagramHandler, CommandHandler, Upper):
        assert not hasattr(cls, "__getattr__"), cls
        assert cls.__getattribute__ is object.__getattribute__, cls


def test_an_assigned_peer_wins_and_other_missing_attributes_still_raise() -> None:
    handler = PeerKeeper()
    with pytest.raises(AttributeError, match="peer"):
        _ = handler.peer  # no transport yet: nothing to ask
    handler.peer = ("127.0.0.9", 4242)  # what a PROXY header says, for instance
    assert handler.peer == ("127.0.0.9", 4242)
    with pytest.raises(AttributeError, match="'PeerKeeper' object has no attribute 'nick'"):
        _ = handler.nick  # type: ignore[attr-defined]
