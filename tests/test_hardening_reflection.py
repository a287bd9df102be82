"""UDP servers never answer a source that could start or keep up a reflection loop.

In one process a loop starts the way a forged datagram would start it: a server
sends from its own socket to another (what arrives is a datagram "from" that
server), or a peer binds a well-known reflector port (when this process may).  As
root, one test forges the source address for real, with a raw socket, between two
upper demos in separate processes, and watches the loopback traffic stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import pytest

from asyncnet import DatagramHandler
from asyncnet.errors import ConfigurationError
from asyncnet.servers import DatagramServer, SourceFilter

from .helpers import read_listening_line, spawn

pytestmark = pytest.mark.all_loops


class Echo(DatagramHandler):
    """Answers every datagram with itself: the worst case for a loop."""

    def __init__(self) -> None:
        self.seen = asyncio.Event()

    def handle(self, data: bytes, addr: Any) -> bytes:
        self.seen.set()
        return data


async def echo_reply(address: Any, payload: bytes) -> bytes:
    """Send ``payload`` from a fresh client socket; return the reply."""
    loop = asyncio.get_running_loop()
    replies: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            replies.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=address)
    try:
        transport.sendto(payload)
        async with asyncio.timeout(5):
            return await replies.get()
    finally:
        transport.close()


async def wait_for_drops(server: DatagramServer, count: int) -> None:
    """A dropped datagram is a handled one: its event wakes the wait."""
    await server.events.wait_for(
        lambda: server.stats.datagrams_reflected >= count, timeout=5, what="reflections"
    )


async def test_ping_pong_between_two_servers_stops_at_once(caplog: Any) -> None:
    """X2.1: server A sends to B from its own socket; B never answers A."""
    caplog.set_level(logging.WARNING, logger="asyncnet.server")
    async with DatagramServer(Echo()) as a, DatagramServer(Echo()) as b:
        a.sendto(b"ping", b.address)
        await wait_for_drops(b, 1)
        # Both still serve ordinary clients, and A never got anything back.
        assert await echo_reply(a.address, b"probe-a") == b"probe-a"
        assert await echo_reply(b.address, b"probe-b") == b"probe-b"
        assert a.stats.datagrams_in == 1  # only the probe
        assert b.stats.datagrams_in == 2
        assert b.stats.datagrams_out == 1  # the probe's reply, never a pong
        assert b.stats.datagrams_reflected == 1
    lines = [r for r in caplog.records if "reflection loop" in r.getMessage()]
    assert len(lines) == 1
    assert "another asyncnet datagram server" in lines[0].getMessage()


async def test_datagram_from_the_servers_own_address_is_dropped() -> None:
    """X2.2: source == the server's own address (it sent to itself)."""
    async with DatagramServer(Echo()) as server:
        for _ in range(3):
            server.sendto(b"hello me", server.address)
        await wait_for_drops(server, 3)
        assert await echo_reply(server.address, b"still here") == b"still here"
        assert server.stats.datagrams_out == 3 + 1  # our three sends and the one reply


async def test_same_port_on_this_host_is_dropped_even_across_processes() -> None:
    """X2.3: another instance of the service (same port, 127.0.0.2)."""
    unlisted = SourceFilter(local_servers=False)  # as if B were in another process
    async with DatagramServer(Echo(), drop_sources=unlisted) as a:
        port = a.address[1]
        try:
            b = DatagramServer(Echo(), host="127.0.0.2", port=port, drop_sources=unlisted)
            await b.start()
        except OSError as exc:
            pytest.skip(f"cannot bind 127.0.0.2:{port}: {exc}")
        try:
            b.sendto(b"ping", a.address)
            await wait_for_drops(a, 1)
            assert b.stats.datagrams_in == 0
        finally:
            await b.stop()


@pytest.mark.serial  # binds the fixed port 7: its loop variants must not run at once
async def test_reflector_port_source_is_dropped_and_configurable() -> None:
    """X2.4: a datagram from 127.0.0.1:7 (echo) is dropped unless allowed."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        peer.bind(("127.0.0.1", 7))
    except OSError as exc:
        peer.close()
        pytest.skip(f"cannot bind udp 127.0.0.1:7 here: {exc}")
    peer.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        async with DatagramServer(Echo()) as server:
            peer.sendto(b"from echo", server.address)
            await wait_for_drops(server, 1)
            assert server.stats.datagrams_out == 0
        allowed = SourceFilter(reflector_ports=frozenset())
        async with DatagramServer(Echo(), drop_sources=allowed) as server:
            peer.sendto(b"from echo", server.address)
            async with asyncio.timeout(5):
                assert await loop.sock_recv(peer, 100) == b"from echo"
            assert server.stats.datagrams_reflected == 0
    finally:
        peer.close()


async def test_no_filter_answers_everybody() -> None:
    """X2.5: ``drop_sources=None`` turns the policy off (a loop is possible)."""
    async with (
        DatagramServer(Echo(), drop_sources=None) as a,
        DatagramServer(Echo(), drop_sources=None) as b,
    ):
        handler_a = a.handler
        assert isinstance(handler_a, Echo)
        b.sendto(b"ping", a.address)  # A answers B, B answers A...
        async with asyncio.timeout(5):
            await handler_a.seen.wait()
        a.close()  # ...so stop it right away
        b.close()


def test_bad_filter_options_are_refused() -> None:
    """X2.5: options are checked when the server is made."""
    with pytest.raises(ConfigurationError, match="reflector_ports"):
        SourceFilter(reflector_ports=frozenset({0}))
    with pytest.raises(ConfigurationError, match="drop_sources"):
        DatagramServer(Echo(), drop_sources=[7])  # type: ignore[arg-type]


# -- the per-source reply budget: loops the address rules cannot see ----------------

# Two servers in separate processes on 127.0.0.1, different ports: none of the
# address rules applies (the other one is not in this process's list, its port is
# neither ours nor a reflector's).  In one process, local_servers=False stands in.
UNLISTED = SourceFilter(local_servers=False)


class Numbered(DatagramHandler):
    """Answers every datagram with a numbered line of its own: two of them facing each
    other never repeat a datagram, nor send back what the other said."""

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.count = 0

    def handle(self, data: bytes, addr: Any) -> bytes:
        self.count += 1
        return b"%s %d" % (self.name, self.count)


async def until_dropped(*servers: DatagramServer, timeout: float) -> None:
    """Return once one of ``servers`` has dropped a datagram as a reflection (no polling)."""
    await until(servers, lambda: any(s.stats.datagrams_reflected for s in servers), timeout)


async def until(
    servers: tuple[DatagramServer, ...], condition: Callable[[], bool], timeout: float
) -> None:
    """Return once ``condition()`` holds, checked at every event of any of ``servers``
    (a drop is an event of the server that dropped)."""
    waits = [asyncio.ensure_future(s.events.wait_for(condition, timeout=timeout)) for s in servers]
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # OperationTimeout when the condition did not hold in time
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def assert_quiet(a: DatagramServer, b: DatagramServer) -> None:
    """Nothing is in flight between ``a`` and ``b`` any more.

    Each server reads its socket in order, so a probe answered by both went through
    each queue after whatever loop datagram was already in it: were the loop alive,
    at least one of them would have received more than the probe.
    """
    before = a.stats.datagrams_in, b.stats.datagrams_in
    assert await echo_reply(a.address, b"probe a") == b"PROBE A"
    assert await echo_reply(b.address, b"probe b") == b"PROBE B"
    after = a.stats.datagrams_in, b.stats.datagrams_in
    assert after == (before[0] + 1, before[1] + 1), f"still looping: {before} -> {after}"


async def loop_must_stop(a: DatagramServer, b: DatagramServer, limit: float) -> None:
    try:
        await until_dropped(a, b, timeout=limit)
    except TimeoutError:
        pytest.fail(
            f"the loop did not stop by itself within {limit} s: A received "
            f"{a.stats.datagrams_in} and answered {a.stats.datagrams_out}, "
            f"B received {b.stats.datagrams_in} and answered {b.stats.datagrams_out}"
        )


@pytest.mark.timeout(20)
async def test_ping_pong_the_address_rules_cannot_see_stops_by_itself(caplog: Any) -> None:
    """Loop DoS (CVE-2024-2169) between two upper servers: one datagram from B's
    address to A (what a forged one looks like on arrival) ends within the budget."""
    from asyncnet.demos.upper import UpperDatagram
    from asyncnet.servers import ReplyBudget

    caplog.set_level(logging.WARNING, logger="asyncnet.server")
    started = asyncio.get_running_loop().time()
    async with (
        DatagramServer(UpperDatagram(), drop_sources=UNLISTED) as a,
        DatagramServer(UpperDatagram(), drop_sources=UNLISTED) as b,
    ):
        b.sendto(b"hello", a.address)
        await loop_must_stop(a, b, limit=5.0)
        await assert_quiet(a, b)
        # Bounded: each side answered about one budget's worth of repeats, and what
        # the budget refilled meanwhile.
        budget = ReplyBudget()
        refilled = 2 * budget.rate * (asyncio.get_running_loop().time() - started)
        assert a.stats.datagrams_in + b.stats.datagrams_in < 2 * budget.burst + refilled + 100
        assert a.stats.datagrams_reflected + b.stats.datagrams_reflected == 1
    lines = [r.getMessage() for r in caplog.records if "reflection loop" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "already answered" in lines[0]


async def answer_burst(address: Any, payloads: list[bytes], window: int = 64) -> list[bytes]:
    """Send ``payloads`` as fast as replies come back, ``window`` in flight; return the
    replies in order (UDP on loopback neither loses nor reorders within these bounds)."""
    loop = asyncio.get_running_loop()
    replies: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            replies.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=address)
    got: list[bytes] = []
    try:
        sent = 0
        async with asyncio.timeout(20):
            while len(got) < len(payloads):
                while sent < len(payloads) and sent - len(got) < window:
                    transport.sendto(payloads[sent])
                    sent += 1
                got.append(await replies.get())
    except TimeoutError:
        pytest.fail(f"only {len(got)} of {len(payloads)} requests were answered")
    finally:
        transport.close()
    return got


@pytest.mark.timeout(30)
async def test_a_quick_burst_of_1000_requests_is_fully_answered() -> None:
    """A client firing 1000 requests at once, distinct or all the same, is not a loop."""
    from asyncnet.demos.upper import UpperDatagram

    async with DatagramServer(UpperDatagram()) as server:
        distinct = [b"request %d" % n for n in range(1000)]
        assert await answer_burst(server.address, distinct) == [p.upper() for p in distinct]
        same = [b"ping"] * 1000
        assert await answer_burst(server.address, same) == [b"PING"] * 1000
        echoed = [b"PING"] * 1000  # each one equal to our reply to the one before
        assert await answer_burst(server.address, echoed) == echoed
        assert server.stats.datagrams_reflected == 0


def forge_udp(source_port: int, port: int, payload: bytes) -> None:
    """Send ONE UDP datagram to 127.0.0.1:``port`` claiming to come from
    127.0.0.1:``source_port`` (a raw socket writes the IP header itself)."""
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,  # IPv4, five-word header
        0,
        20 + 8 + len(payload),
        0,  # id: the kernel fills it in
        0,
        64,
        socket.IPPROTO_UDP,
        0,  # checksum: the kernel fills it in
        socket.inet_aton("127.0.0.1"),
        socket.inet_aton("127.0.0.1"),
    )
    udp = struct.pack("!HHHH", source_port, port, 8 + len(payload), 0)  # no UDP checksum
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        raw.sendto(header + udp + payload, ("127.0.0.1", 0))


def loopback_sniffer() -> socket.socket:
    """Every IPv4 packet delivered on lo, once each (the outgoing copies are skipped)."""
    sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    try:
        # The loop runs at some 100,000 datagrams/s: room to keep up (SO_RCVBUFFORCE,
        # which Python does not name, passes the rmem_max cap as root may).
        sniffer.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 16 << 20)
        sniffer.bind(("lo", 0))
    except BaseException:
        sniffer.close()
        raise
    return sniffer


def datagrams_until_quiet(
    sniffer: socket.socket, ports: set[int], *, quiet: float, limit: float
) -> int:
    """Count UDP datagrams between ``ports`` until none has passed for ``quiet`` seconds;
    fail after ``limit`` seconds of traffic that does not stop."""
    started = time.monotonic()
    last = started
    count = 0
    while True:
        now = time.monotonic()
        if now - last >= quiet:
            return count
        if now - started > limit:
            pytest.fail(
                f"the loop did not stop by itself: {count} datagrams between ports "
                f"{sorted(ports)} in {now - started:.1f} s and still going"
            )
        sniffer.settimeout(quiet - (now - last))
        try:
            packet, where = sniffer.recvfrom(128)
        except TimeoutError:
            continue
        if where[2] == socket.PACKET_OUTGOING or packet[9] != socket.IPPROTO_UDP:
            continue
        start = (packet[0] & 0x0F) * 4
        source, dest = struct.unpack_from("!HH", packet, start)
        if {source, dest} == ports:
            count += 1
            last = time.monotonic()


UDP_LISTENING = r"udp://127\.0\.0\.1:(\d+)"


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="forging a source address needs a raw socket (root)",
)
def test_one_forged_datagram_between_two_upper_processes_stops_by_itself() -> None:
    """Loop DoS (CVE-2024-2169) as it happens: two upper demos on 127.0.0.1, two
    processes, ONE datagram to B forged from A's port.  The exchange ends by itself,
    is logged once, and both keep serving."""
    from asyncnet.servers import ReplyBudget

    command = ["-m", "asyncnet.demos.upper", "--port", "0"]
    with spawn(command) as a, spawn(command) as b:
        port_a = int(read_listening_line(a, UDP_LISTENING)[1])
        port_b = int(read_listening_line(b, UDP_LISTENING)[1])
        with loopback_sniffer() as sniffer:
            forge_udp(port_a, port_b, b"hello")
            count = datagrams_until_quiet(sniffer, {port_a, port_b}, quiet=0.5, limit=5.0)
        # The loop ran (at some 100,000 datagrams a second), and a budget's worth of
        # repeats on either side ended it.
        assert 2 < count < 2 * ReplyBudget().burst + 100
        for port in (port_a, port_b):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.settimeout(5)
                for _ in range(3):  # the same request again is still answered
                    client.sendto(b"still there", ("127.0.0.1", port))
                    assert client.recvfrom(100)[0] == b"STILL THERE"
        for proc in (a, b):
            proc.send_signal(signal.SIGINT)
        logs = "".join(proc.communicate(timeout=10)[1] for proc in (a, b))
        assert a.returncode == b.returncode == 0
    lines = [line for line in logs.splitlines() if "reflection loop" in line]
    assert len(lines) == 1, logs
    assert "already answered" in lines[0]


class LaterUpper(DatagramHandler):
    """The upper service with a suspended handler: replies come from a task."""

    async def handle(self, data: bytes, addr: Any) -> bytes:
        await asyncio.sleep(0)
        return data.upper()


@pytest.mark.timeout(20)
async def test_many_loops_at_once_through_async_handlers_all_stop() -> None:
    """Ten datagrams, ten different loops sharing one pair of servers, replies from
    tasks: the repeats all draw on one budget per source and all end."""
    from asyncnet.servers import ReplyBudget

    started = asyncio.get_running_loop().time()
    async with (
        DatagramServer(LaterUpper(), drop_sources=UNLISTED) as a,
        DatagramServer(LaterUpper(), drop_sources=UNLISTED) as b,
    ):
        for n in range(10):
            b.sendto(b"loop %d" % n, a.address)
        await loop_must_stop(a, b, limit=5.0)
        # The first drop ends one loop; each of the others ends at its next repeat.
        await until(
            (a, b), lambda: a.stats.datagrams_reflected + b.stats.datagrams_reflected == 10, 5
        )
        await assert_quiet(a, b)
        # A budget's worth of repeats on each side, what the budget refilled while the
        # loops ran (a slow, busy machine runs them longer), plus the rounds before each
        # loop was remembered (the server stores the fingerprints of 1 answer in about 8).
        budget = ReplyBudget()
        refilled = 2 * budget.rate * (asyncio.get_running_loop().time() - started)
        assert a.stats.datagrams_in + b.stats.datagrams_in < 2 * budget.burst + refilled + 2000


async def send_and_count(
    server: DatagramServer, sock: socket.socket, payloads: list[bytes]
) -> None:
    """Send ``payloads`` from ``sock``; return once the server is done with all of them."""
    target = server.events.datagrams + len(payloads)
    for payload in payloads:
        sock.sendto(payload, server.address)
    await server.events.wait_datagrams(target, timeout=5)


def client_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def test_a_source_over_its_budget_is_muted_until_it_slows_down(caplog: Any) -> None:
    """Beyond ``burst`` repeats a source is not answered at all (counted, logged once)
    while it keeps sending faster than ``rate``; every other source still is."""
    from asyncnet.servers import ReplyBudget

    caplog.set_level(logging.WARNING, logger="asyncnet.server")
    slow = SourceFilter(budget=ReplyBudget(burst=5, rate=0.001))
    async with DatagramServer(Echo(), drop_sources=slow) as server:
        with client_socket() as client, client_socket() as other:
            await send_and_count(server, client, [b"same"] * 10)  # 1 new, 9 repeats
            assert server.stats.datagrams_out == 6
            assert server.stats.datagrams_reflected == 4
            await send_and_count(server, client, [b"new"])  # muted: new or not
            assert server.stats.datagrams_reflected == 5
            await send_and_count(server, other, [b"same"] * 2 + [b"other"])
            assert server.stats.datagrams_out == 6 + 3
            assert server.stats.datagrams_reflected == 5
    lines = [r.getMessage() for r in caplog.records if "reflection loop" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "budget of 5" in lines[0]


async def test_the_budget_refills_with_time() -> None:
    """Tokens come back at ``rate`` per second: a source that slows down is answered."""
    from asyncnet.servers import ReplyBudget

    one = SourceFilter(budget=ReplyBudget(burst=1, rate=20.0))
    async with DatagramServer(Echo(), drop_sources=one) as server:
        with client_socket() as client:
            await send_and_count(server, client, [b"x"] * 2)  # new, then the one token
            await asyncio.sleep(0.1)  # time itself is what refills: 2 tokens, capped at 1
            await send_and_count(server, client, [b"x"])
            assert server.stats.datagrams_out == 3
            assert server.stats.datagrams_reflected == 0


async def test_the_table_of_sources_is_bounded() -> None:
    """``sources`` buckets at most: a source whose bucket has filled up again makes
    room; while none has, newcomers share one bucket, so a spray of forged sources
    neither grows the table nor buys anyone a fresh budget."""
    from asyncnet.servers import ReplyBudget

    one = SourceFilter(budget=ReplyBudget(burst=1, rate=4.0, sources=1))
    async with DatagramServer(Echo(), drop_sources=one) as server:
        with client_socket() as first, client_socket() as second, client_socket() as third:
            await send_and_count(server, first, [b"a"] * 2)  # new, then its one token
            await asyncio.sleep(0.3)  # time itself refills the first's bucket: full again
            await send_and_count(server, second, [b"a"] * 2)  # takes the first's place
            assert server.stats.datagrams_reflected == 1
            # The table is full of a source that owes a token: the third shares the
            # newcomers' bucket, and so does the first now.
            await send_and_count(server, third, [b"a"] * 2)
            assert server.stats.datagrams_reflected == 2
            await send_and_count(server, first, [b"a"])
            assert server.stats.datagrams_reflected == 3
            assert server.stats.datagrams_out == 2 + 1 + 1


@pytest.mark.timeout(30)
@pytest.mark.slow
async def test_fingerprints_are_bounded() -> None:
    """Fingerprints live in a fixed table (``remembered`` slots): a flood of requests
    cannot grow it, and pushes out what came before, so a repeat of something long
    ago is new again."""
    from asyncnet.servers import ReplyBudget

    small = SourceFilter(budget=ReplyBudget(burst=1, rate=0.001, remembered=4))
    async with DatagramServer(Echo(), drop_sources=small) as server:
        with client_socket() as client:
            await send_and_count(server, client, [b"old", b"old"])  # spends the one token
            assert server.stats.datagrams_out == 2
            # Thousands of others push "old" out of its slots, recent and rare.
            others = [b"other %d" % n for n in range(10_000)]
            assert await answer_burst(server.address, others) == others
            # Remembered, "old" would be a repeat, and this source has no token left.
            await send_and_count(server, client, [b"old"])
            assert server.stats.datagrams_reflected == 0
            assert server.stats.datagrams_out == 2 + 10_000 + 1


@pytest.mark.timeout(30)
@pytest.mark.slow
async def test_thousands_of_loops_at_once_all_stop() -> None:
    """More loops at once than the recent fingerprints can hold (one forged datagram
    each): the few recognised in the long memory spend the budget, the source is
    muted, and with it every loop ends."""
    from asyncnet.demos.upper import UpperDatagram
    from asyncnet.servers import ReplyBudget

    # 16 recent fingerprints against 2000 loops, and a budget of 50 (refilled at 1/s)
    # to keep the test short.
    tight = SourceFilter(local_servers=False, budget=ReplyBudget(burst=50, rate=1.0, remembered=32))
    async with (
        DatagramServer(UpperDatagram(), drop_sources=tight, receive_buffer=1 << 21) as a,
        DatagramServer(UpperDatagram(), drop_sources=tight, receive_buffer=1 << 21) as b,
    ):
        for n in range(2000):
            b.sendto(b"loop %d" % n, a.address)
            if n % 100 == 0:
                await asyncio.sleep(0)  # let the loop flush our send buffer
        await loop_must_stop(a, b, limit=10.0)
        await until_quiet(a, b, limit=10.0)


async def until_quiet(a: DatagramServer, b: DatagramServer, limit: float) -> None:
    """Probe both servers until nothing else passed between them (see assert_quiet)."""
    try:
        async with asyncio.timeout(limit):
            while True:
                try:
                    await assert_quiet(a, b)
                    return
                except AssertionError:
                    continue
    except TimeoutError:
        pytest.fail(
            f"some loops still ran after {limit} s: A received {a.stats.datagrams_in}, "
            f"B {b.stats.datagrams_in}; dropped {a.stats.datagrams_reflected} and "
            f"{b.stats.datagrams_reflected}"
        )


@pytest.mark.timeout(20)
async def test_a_loop_that_never_repeats_needs_new_cost() -> None:
    """Two servers that each say something new every time never repeat: the default
    budget cannot tell that from a client; ``new_cost=1`` (a plain rate limit) ends it."""
    from asyncnet.servers import ReplyBudget

    limited = SourceFilter(local_servers=False, budget=ReplyBudget(burst=200, new_cost=1.0))
    async with (
        DatagramServer(Numbered(b"a"), drop_sources=limited) as a,
        DatagramServer(Numbered(b"b"), drop_sources=UNLISTED) as b,
    ):
        b.sendto(b"b 0", a.address)
        await loop_must_stop(a, b, limit=5.0)
        assert a.stats.datagrams_reflected == 1
        assert b.stats.datagrams_reflected == 0
        assert 200 <= a.stats.datagrams_in < 300


@pytest.mark.slow
async def test_a_peer_that_echoes_our_numbered_replies_is_caught() -> None:
    """Our replies never repeat (numbered), but the peer sends each one back: the
    fingerprint of our own reply is what catches that loop."""
    async with (
        DatagramServer(Numbered(b"a"), drop_sources=UNLISTED) as a,
        DatagramServer(Echo(), drop_sources=SourceFilter(local_servers=False, budget=None)) as b,
    ):
        b.sendto(b"start", a.address)
        await loop_must_stop(a, b, limit=5.0)
        assert a.stats.datagrams_reflected == 1
        assert b.stats.datagrams_reflected == 0


@pytest.mark.timeout(20)
async def test_budget_none_keeps_only_the_address_rules() -> None:
    """``SourceFilter(budget=None)``: repeats are answered without limit."""
    from asyncnet.servers import ReplyBudget

    off = SourceFilter(budget=None)
    async with DatagramServer(Echo(), drop_sources=off) as server:
        same = [b"same"] * (ReplyBudget().burst + 10)
        assert await answer_burst(server.address, same) == same
        assert server.stats.datagrams_reflected == 0


def test_bad_budget_options_are_refused() -> None:
    """Each option is checked when the budget is made, with its name in the message."""
    from asyncnet.servers import ReplyBudget

    cases: list[tuple[dict[str, Any], str]] = [
        ({"burst": 0}, "burst must be an int >= 1"),
        ({"burst": 1.5}, "burst must be an int"),
        ({"rate": 0}, "rate must be a finite number > 0"),
        ({"rate": float("inf")}, "rate must be a finite number"),
        ({"new_cost": -1}, "new_cost must be a finite number >= 0"),
        ({"new_cost": 2, "burst": 1}, "would drop every new datagram"),
        ({"remembered": 1}, "remembered must be >= 2"),
        ({"sources": 0}, "sources must be an int >= 1"),
    ]
    for options, match in cases:
        with pytest.raises(ConfigurationError, match=match):
            ReplyBudget(**options)
    with pytest.raises(ConfigurationError, match="budget must be a ReplyBudget"):
        SourceFilter(budget=100)  # type: ignore[arg-type]
