"""Emitter and bucket on real loopback sockets (RELIABILITY.md C1-C4, U1).

Every bucket binds 127.0.0.1:0; every emitter aims at it (or at a port that was just
closed, for "nobody listening").  Nothing here sends a broadcast: C2 is checked with
getsockopt and by the refusal that comes before any send.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import re
import socket
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from asyncnet import DatagramHandler, DatagramServer, creosote
from asyncnet.creosote import (
    BroadcastNotAllowed,
    Bucket,
    CreosoteHandler,
    Emitter,
    Message,
    SocketEmitter,
    Subscription,
    format_line,
    is_broadcast_address,
    spew,
)
from asyncnet.creosote._protocol import (
    HEADER_SIZE,
    MAX_DATAGRAM,
    TRUNCATION_MARKER,
    Header,
    chunk_framed,
    encode_header,
)
from asyncnet.errors import ConfigurationError, NetworkError

from .helpers import wait_until

ALL_LOOPS = pytest.mark.all_loops

BUFSIZE = creosote.BUFSIZE
SIZES = [1, BUFSIZE - 1, BUFSIZE, BUFSIZE + 1, 1024 * 1024]
# Generous receive buffer: these tests assert exact content, and a test machine busy
# with other work must not turn a scheduling hiccup into a lost datagram.
RCVBUF = 4 * 1024 * 1024


def pattern(size: int) -> bytes:
    """Bytes that make a misplaced or missing chunk visible (not one repeated byte)."""
    return bytes((i * 7 + i // 251) % 256 for i in range(size))


def closed_udp_port() -> int:
    """A loopback UDP port that nobody listens on (bound, read back, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def take(subscription: Subscription, count: int, timeout: float = 10.0) -> list[Message]:
    """The next ``count`` messages, failing after ``timeout`` seconds."""
    out: list[Message] = []
    async with asyncio.timeout(timeout):
        while len(out) < count:
            out.append(await anext(subscription))
    return out


# -- exact content, both modes --------------------------------------------------------------


@ALL_LOOPS
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s}B")
async def test_framed_message_is_reassembled_exactly(size: int) -> None:
    data = pattern(size)
    limit = 2 * 1024 * 1024  # above the 64 KiB default: this test is about reassembly
    async with Bucket(port=0, receive_buffer=RCVBUF, max_message_size=limit) as bucket:
        async with Emitter(*bucket.address, framed=True, max_message_size=limit) as emitter:
            sent = await emitter.send(data)
            sender = emitter.local_address
        [message] = await take(aiter(bucket), 1)
    assert message.data == data
    assert message.complete
    assert message.framed
    assert message.chunks == sent == -(-size // (BUFSIZE - HEADER_SIZE))
    assert message.sender == sender
    assert bucket.stats.partial_messages == 0


@ALL_LOOPS
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s}B")
async def test_raw_message_arrives_as_the_tutorials_chunks(size: int) -> None:
    data = pattern(size)
    async with Bucket(port=0, receive_buffer=RCVBUF, max_queue=2048) as bucket:
        sent = await spew(data, *bucket.address, max_message_size=2 * 1024 * 1024)
        messages = await take(aiter(bucket), sent)
    assert sent == -(-size // BUFSIZE)
    assert [len(m.data) for m in messages] == [
        len(data[i : i + BUFSIZE]) for i in range(0, size, BUFSIZE)
    ]
    assert b"".join(m.data for m in messages) == data
    assert all(not m.framed for m in messages)
    assert len({m.sender for m in messages}) == 1


@ALL_LOOPS
async def test_module_settings_are_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """BUFSIZE and PORT are module settings, as in the tutorial, overridable per call."""
    async with Bucket(port=0) as bucket:
        monkeypatch.setattr(creosote, "PORT", bucket.address[1])
        monkeypatch.setattr(creosote, "BUFSIZE", 100)
        assert await spew(b"x" * 250) == 3  # default port and chunk size: the settings
        assert await spew(b"y" * 250, bufsize=250, port=bucket.address[1]) == 1
        messages = await take(aiter(bucket), 4)
    assert [m.data for m in messages] == [b"x" * 100, b"x" * 100, b"x" * 50, b"y" * 250]


@ALL_LOOPS
async def test_interleaved_framed_senders_are_told_apart() -> None:
    async with Bucket(port=0, receive_buffer=RCVBUF) as bucket:
        async with (
            Emitter(*bucket.address, framed=True) as a,
            Emitter(*bucket.address, framed=True) as b,
        ):
            await asyncio.gather(a.send(b"A" * 20_000), b.send(b"B" * 20_000))
            senders = {a.local_address: b"A" * 20_000, b.local_address: b"B" * 20_000}
        messages = await take(aiter(bucket), 2)
    assert {m.sender: m.data for m in messages} == senders


# -- C1: nobody listening --------------------------------------------------------------------


@ALL_LOOPS
async def test_emitter_with_no_listener_never_raises_and_counts_refusals() -> None:
    """C1: 1000 emits at a closed port: no exception, nothing dropped, refusals counted."""
    async with Emitter(port=closed_udp_port()) as emitter:
        for n in range(1000):
            emitter.emit(f"debug message {n}")
        # ICMP "port unreachable" comes back asynchronously: wait for it, bounded.
        await wait_until(lambda: emitter.stats.refused > 0, timeout=5)
        emitter.emit("and it still works after the refusals")
    assert emitter.stats.messages == 1001
    assert emitter.stats.dropped == 0


@ALL_LOOPS
async def test_spew_with_no_listener_returns_normally() -> None:
    """C1: the one-shot spew() is as quiet as the emitter."""
    assert await spew("nobody home", port=closed_udp_port()) == 1
    assert await spew(b"z" * 5000, port=closed_udp_port(), framed=True) == 5


@ALL_LOOPS
async def test_emitter_after_close_drops_instead_of_raising() -> None:
    emitter = Emitter(port=closed_udp_port())
    assert emitter.emit("before start") == 0
    async with emitter:
        pass
    assert emitter.emit("after close") == 0
    assert await emitter.send("after close") == 0
    assert emitter.stats.dropped == 3


async def test_emitter_drops_rather_than_queue_without_limit(tmp_path: Path) -> None:
    """A receiver that never reads: the transport buffer stays bounded; the rest is dropped.

    UDP on loopback never pushes back, so this uses Unix datagram sockets, whose
    receive queue really fills up (named ones: asyncio cannot send on an unnamed peer).
    """
    theirs = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    theirs.bind(str(tmp_path / "bucket"))
    ours = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.bind(str(tmp_path / "emitter"))
    ours.connect(str(tmp_path / "bucket"))
    with theirs:
        async with Emitter(
            sock=ours, max_buffer=20_000, bufsize=1000, close_timeout=0.1
        ) as emitter:
            biggest = 0
            for n in range(5000):
                emitter.emit(b"%d" % n + b"." * 995)
                biggest = max(biggest, emitter.write_buffer_size)
            assert emitter.stats.dropped > 0
            assert biggest <= 20_000 + 1000  # the bound plus the message that crossed it
            # spew() waits a bounded time for the buffer to drain, then gives up.
            dropped = emitter.stats.dropped
            async with asyncio.timeout(5):
                assert await emitter.send(b"w" * 30_000, timeout=0.05) < 30
            assert emitter.stats.dropped == dropped + 1
            assert emitter.write_buffer_size <= 20_000 + 1000
            emitter.close()


# -- C2: broadcast -----------------------------------------------------------------------------


@ALL_LOOPS
async def test_broadcast_option_sets_so_broadcast() -> None:
    """C2: broadcast=True sets SO_BROADCAST (checked with getsockopt; nothing is broadcast)."""
    port = closed_udp_port()
    async with Emitter(port=port, broadcast=True) as loud, Emitter(port=port) as quiet:
        assert loud.socket.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1
        assert quiet.socket.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 0
    with SocketEmitter(port=port, broadcast=True) as sync:
        assert sync.socket.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1


@ALL_LOOPS
async def test_bucket_socket_has_no_reuseaddr() -> None:
    """C2: no SO_REUSEADDR on UDP (bpo-37228): a second bucket cannot share the port."""
    async with Bucket(port=0) as bucket:
        sock = bucket.server.socket
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0


@ALL_LOOPS
@pytest.mark.parametrize("host", ["255.255.255.255", "<broadcast>"])
async def test_broadcast_target_is_refused_before_sending(host: str) -> None:
    """C2: without broadcast=True a broadcast destination raises before any datagram.

    The loopback guard would record (and fail the test on) any attempt to send.
    """
    with pytest.raises(BroadcastNotAllowed, match=r"broadcast=True"):
        Emitter(host, 5555)
    with pytest.raises(BroadcastNotAllowed):
        await spew("to everybody", host, 5555)
    with pytest.raises(BroadcastNotAllowed):
        SocketEmitter(host, 5555)
    with pytest.raises(BroadcastNotAllowed):
        CreosoteHandler(host, 5555)
    assert issubclass(BroadcastNotAllowed, ValueError)
    assert issubclass(BroadcastNotAllowed, PermissionError)


def interface_broadcasts() -> list[str]:
    """The ``brd`` addresses ``ip`` reports for this machine's interfaces."""
    try:
        shown = subprocess.run(
            ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return re.findall(r"\bbrd (\d+\.\d+\.\d+\.\d+)", shown)


@ALL_LOOPS
async def test_directed_broadcast_of_a_local_interface_is_refused() -> None:
    """C2: a subnet's broadcast address is recognised too (Linux), before any send."""
    addresses = interface_broadcasts()
    if not addresses:
        pytest.skip("no interface with an IPv4 broadcast address (or no `ip` tool)")
    for address in addresses:
        assert is_broadcast_address(address)
        with pytest.raises(BroadcastNotAllowed, match=re.escape(address)):
            Emitter(address, 5555)
    assert not is_broadcast_address("127.0.0.1")
    assert not is_broadcast_address("::1")
    assert not is_broadcast_address("localhost")


# -- C3: oversize and hostile content ------------------------------------------------------


HOSTILE: list[str | bytes] = [
    "\x1b[2J\x1b[31mANSI clear screen and red",
    "NUL\x00in the middle",
    b"invalid utf-8 \xff\xfe\xc3",
    "bell\x07 backspace\x08 carriage return\r",
    "bidi \u202eoverride",
]


@ALL_LOOPS
@pytest.mark.parametrize("framed", [False, True], ids=["raw", "framed"])
async def test_hostile_and_oversized_messages_are_escaped(framed: bool) -> None:
    """C3: 70 KB, ANSI, NUL, invalid UTF-8: never EMSGSIZE, printed escaped, marker present."""
    lines: list[str] = []
    expected = len(HOSTILE) + (1 if framed else 8)  # 8192 bytes = 8 raw chunks
    all_shown = asyncio.Event()

    def show(message: Message) -> None:
        lines.append(format_line(message))
        if len(lines) >= expected:
            all_shown.set()

    big = ("all work and no play " * 3400)[:70_000]
    async with Bucket(port=0, receive_buffer=RCVBUF, callback=show) as bucket:
        async with Emitter(*bucket.address, framed=framed, max_message_size=8192) as emitter:
            for text in [*HOSTILE, big]:
                assert await emitter.send(text) > 0
            assert emitter.stats.truncated == 1
            assert emitter.stats.errors == 0  # no EMSGSIZE, no other send error
        async with asyncio.timeout(10):
            await all_shown.wait()
    text = "\n".join(lines)
    assert "\x1b" not in text
    assert "\x00" not in text
    assert all(line.isprintable() for line in lines)
    assert "\\x1b[2J\\x1b[31mANSI" in text
    assert "NUL\\x00in" in text
    assert "\\xff\\xfe\\xc3" in text
    assert "\\u202eoverride" in text
    assert TRUNCATION_MARKER.decode() in text
    if framed:
        assert "truncated by the sender" in text


@ALL_LOOPS
async def test_bufsize_that_would_overflow_a_datagram_is_refused() -> None:
    """C3: the emitter never attempts a datagram over the UDP limit (EMSGSIZE)."""
    with pytest.raises(ConfigurationError, match="bufsize"):
        Emitter(port=5555, bufsize=MAX_DATAGRAM + 1)
    with pytest.raises(ConfigurationError, match="bufsize"):
        Emitter(port=5555, bufsize=HEADER_SIZE, framed=True)


# -- C4: port already bound ---------------------------------------------------------------


@ALL_LOOPS
async def test_port_already_bound_is_a_clear_error_naming_it() -> None:
    """C4: a bound port gives an OSError naming the port, not a silent second listener."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        port = squatter.getsockname()[1]
        with pytest.raises(OSError, match=rf"udp port {port}\b.*already in use") as info:
            async with Bucket(port=port):
                pass
    assert isinstance(info.value, NetworkError)
    assert info.value.errno == errno.EADDRINUSE
    async with Bucket(port=0) as first:
        with pytest.raises(OSError, match=str(first.address[1])):
            await Bucket(port=first.address[1]).start()


# -- U1: garbage, floods ---------------------------------------------------------------------


@ALL_LOOPS
async def test_garbage_datagrams_never_stop_the_bucket() -> None:
    """U1: empty, 65507 bytes, invalid UTF-8, broken and forged frames; then a probe."""
    garbage = [
        b"",
        bytes(range(256)) * 255 + b"x" * 227,  # 65507 bytes: the largest UDP datagram
        b"\xff\xfe\xfd invalid",
        b"\x00MrC",  # the magic and nothing else
        b"\x00MrC\x09\x00" + b"\x00" * 12,  # unknown version
        encode_header(Header(1, 0, 0xFFFFFFFF)) + b"forged count",  # waits, bounded
        chunk_framed(b"q" * 3000, 7, 1024)[1],  # a middle chunk with no siblings
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind(("127.0.0.1", 0))
        sender = raw.getsockname()
        async with Bucket(port=0, receive_buffer=RCVBUF, max_partials=4, expiry=0.2) as bucket:
            for datagram in garbage:
                raw.sendto(datagram, bucket.address)
            raw.sendto(b"probe", bucket.address)
            messages = await take(aiter(bucket), 8)  # 6 shown at once, 2 given up later
            stats = bucket.stats
    by_data = {m.data: m for m in messages}
    assert by_data[b""].sender == sender
    assert by_data[garbage[1]].data == garbage[1]  # the 65507-byte datagram, intact
    assert by_data[b"probe"].complete
    assert messages.index(by_data[b"probe"]) < 6  # the probe did not wait for anything
    assert sorted(m.reason or "" for m in messages if not m.complete) == ["expired", "expired"]
    assert stats.malformed == 2
    assert stats.datagrams == len(garbage) + 1
    assert stats.messages == 8
    assert stats.partial_messages == 0


@ALL_LOOPS
@pytest.mark.parametrize("framed", [False, True], ids=["raw", "framed"])
async def test_burst_of_ten_thousand_is_counted_with_bounded_memory(
    framed: bool, record_property: object
) -> None:
    """U1: 10,000 messages in one burst; UDP may drop, the bucket counts and survives."""
    seen = asyncio.Event()
    arrived: list[int] = [0]

    def count(message: Message) -> None:
        if message.data.startswith(b"END"):
            seen.set()
        else:
            arrived[0] += 1

    tracemalloc.start()
    try:
        async with (
            Bucket(port=0, callback=count) as bucket,
            Emitter(*bucket.address, framed=framed) as emitter,
        ):
            watcher = bucket.subscribe(max_queue=100)  # a consumer that never reads
            for n in range(10_000):
                emitter.emit(f"burst message {n:05d}")
            # A sentinel may be dropped too while the receive buffer is full: retry it.
            for attempt in range(100):
                emitter.emit(f"END {attempt}")
                try:
                    async with asyncio.timeout(0.2):
                        await seen.wait()
                    break
                except TimeoutError:
                    continue
            assert seen.is_set()
            stats = bucket.stats
            assert len(watcher) == 100
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"burst ({'framed' if framed else 'raw'}): {arrived[0]} of 10000 arrived")
    record_property("burst_arrived", arrived[0])  # type: ignore[operator]
    assert 0 < arrived[0] <= 10_000
    assert emitter.stats.messages >= 10_000
    assert stats.queue_dropped == stats.messages - 100  # only the newest 100 were kept
    assert peak < 32 * 1024 * 1024


# -- the bucket as a component ---------------------------------------------------------------


@ALL_LOOPS
async def test_callback_errors_are_counted_and_the_bucket_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    got: list[bytes] = []

    def fragile(message: Message) -> None:
        if message.data == b"boom":
            raise ValueError("callback bug")
        got.append(message.data)

    async with Bucket(port=0, callback=fragile) as bucket:
        with pytest.raises(RuntimeError, match="subscribe"):
            aiter(bucket)
        async with Emitter(*bucket.address) as emitter:
            for text in ("one", "boom", "two"):
                emitter.emit(text)
            await bucket.server.events.wait_for(lambda: len(got) == 2, timeout=5)
    assert got == [b"one", b"two"]
    assert bucket.stats.callback_errors == 1
    assert "callback bug" in caplog.text


@ALL_LOOPS
async def test_every_subscriber_gets_every_message_and_iteration_ends_at_close() -> None:
    async with Bucket(port=0) as bucket:
        extra = bucket.subscribe()
        async with Emitter(*bucket.address) as emitter:
            emitter.emit("to all")
        [first] = await take(aiter(bucket), 1)
        [second] = await take(extra, 1)
    assert first is second
    async with asyncio.timeout(5):
        assert [m async for m in bucket] == []
        assert [m async for m in extra] == []
    assert [m async for m in bucket.subscribe()] == []  # subscribing late: ends at once


@ALL_LOOPS
async def test_partial_message_is_reported_when_it_expires_and_at_close() -> None:
    datagrams = chunk_framed(pattern(5000), 99, 1024)  # 5 chunks
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind(("127.0.0.1", 0))
        async with Bucket(port=0, expiry=0.1) as bucket:
            for datagram in datagrams[:2] + datagrams[3:]:
                raw.sendto(datagram, bucket.address)
            [expired] = await take(aiter(bucket), 1)
        async with Bucket(port=0, expiry=60) as bucket:
            raw.sendto(datagrams[0], bucket.address)
            await bucket.server.events.wait_datagrams(1, timeout=5)
            assert bucket.stats.partial_messages == 1
        async with asyncio.timeout(5):
            [closed] = [m async for m in bucket]
    assert (expired.reason, expired.lost, expired.missing) == ("expired", 1, (2,))
    assert "incomplete (expired): 1 of 5 chunks lost [2]" in format_line(expired)
    assert (closed.reason, closed.lost) == ("closed", 4)


@ALL_LOOPS
async def test_ipv6_bucket_and_emitter() -> None:
    from asyncnet.testing import can_bind_ipv6

    if not can_bind_ipv6():
        pytest.skip("::1 cannot be bound here")
    async with Bucket("::1", 0) as bucket:
        assert await spew("over IPv6", "::1", bucket.address[1], framed=True) == 1
        [message] = await take(aiter(bucket), 1)
    assert message.data == b"over IPv6"
    assert message.sender[0] == "::1"


@ALL_LOOPS
async def test_socket_emitter_without_a_loop_works_and_counts_refusals() -> None:
    """C1 for the loop-less emitter: a refusal surfaces on a later send and is counted."""
    with SocketEmitter(port=closed_udp_port()) as quiet:
        for n in range(1000):
            quiet.emit(f"n={n}")
            if quiet.stats.refused:
                break
        assert quiet.stats.refused > 0
    assert quiet.emit("closed") == 0
    async with Bucket(port=0) as bucket:
        with SocketEmitter(*bucket.address, framed=True) as emitter:
            emitter.emit(pattern(3000))
        [message] = await take(aiter(bucket), 1)
    assert message.data == pattern(3000)
    assert message.chunks == 3


def test_datagram_server_on_uvloop_reports_a_busy_port_cleanly() -> None:
    """C4 on uvloop, at the core: the bind error is clean, with its errno, and leaks nothing."""
    uvloop = pytest.importorskip("uvloop")
    unraisable: list[object] = []

    async def bind_busy_port() -> OSError:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
            squatter.bind(("127.0.0.1", 0))
            server = DatagramServer(DatagramHandler(), port=squatter.getsockname()[1])
            with pytest.raises(OSError) as info:
                await server.start()
        return info.value

    previous = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            error = runner.run(bind_busy_port())
        gc.collect()
    finally:
        sys.unraisablehook = previous
    assert unraisable == []
    assert error.errno == errno.EADDRINUSE
