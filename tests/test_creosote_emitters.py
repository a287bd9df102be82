"""The two creosote emitters share one home: the same settings checks, the same error
translation when the socket cannot be opened, and StateError for lifecycle misuse.

``Emitter`` (asyncio) and ``SocketEmitter`` (blocking) are built on one base; these
tests hold both to the same behaviour, so a check added to one cannot miss the other.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from asyncnet.creosote import Emitter, SocketEmitter
from asyncnet.errors import ConfigurationError, NetworkError, StateError

ALL_LOOPS = pytest.mark.all_loops


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    """A real UDP socket on 127.0.0.1 for the emitters to send to."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        yield sock


async def opened(kind: type[Emitter] | type[SocketEmitter], **options: Any) -> Any:
    """An emitter of ``kind`` with its socket open (``Emitter`` opens in start())."""
    if kind is Emitter:
        return await Emitter(**options).start()
    return SocketEmitter(**options)


async def closed(emitter: Any) -> None:
    if isinstance(emitter, Emitter):
        await emitter.stop()
    else:
        emitter.close()


KINDS = pytest.mark.parametrize("kind", [Emitter, SocketEmitter], ids=["asyncio", "socket"])

BAD_SETTINGS: list[tuple[dict[str, Any], str]] = [
    ({"port": 0}, "port must be in 1..65535"),
    ({"port": 65536}, "port must be in 1..65535"),
    ({"port": 5555, "bufsize": 0}, "bufsize must be in 1..65507 in raw mode"),
    ({"port": 5555, "bufsize": 18, "framed": True}, "bufsize must be in 19..65507 in framed"),
    ({"port": 5555, "max_message_size": 4}, "max_message_size must exceed"),
]


@KINDS
@pytest.mark.parametrize(("settings", "words"), BAD_SETTINGS)
def test_both_emitters_refuse_the_same_bad_settings_when_made(
    kind: Callable[..., Any], settings: dict[str, Any], words: str
) -> None:
    """A bad setting fails in the constructor, with the same words for both emitters."""
    with pytest.raises(ConfigurationError, match=words):
        kind(**settings)


@KINDS
@ALL_LOOPS
async def test_both_emitters_translate_an_open_failure_the_same_way(
    kind: type[Emitter] | type[SocketEmitter],
) -> None:
    """An OSError while opening (here the resolver refusing the family, with no
    query sent) is one NetworkError naming the destination and the phase."""
    with pytest.raises(NetworkError) as info:
        await opened(kind, host="127.0.0.1", port=5555, family=socket.AF_UNIX)
    error = info.value
    assert str(error).startswith("creosote emitter cannot open a socket to 127.0.0.1:5555: ")
    assert error.phase == "open"
    assert error.peer == ("127.0.0.1", 5555)
    assert isinstance(error.__cause__, socket.gaierror)
    assert isinstance(error, OSError)  # existing `except OSError` clauses still work


@KINDS
@ALL_LOOPS
async def test_both_emitters_send_the_same_datagrams(
    kind: type[Emitter] | type[SocketEmitter], receiver: socket.socket
) -> None:
    """Chunking and counting are shared: the same message gives the same datagrams."""
    host, port = receiver.getsockname()
    emitter = await opened(kind, host=host, port=port, bufsize=4)
    try:
        assert emitter.emit("abcdefghij") == 3
        got = [receiver.recvfrom(64) for _ in range(3)]
        assert [data for data, _ in got] == [b"abcd", b"efgh", b"ij"]
        assert {sender for _, sender in got} == {emitter.local_address}
        assert emitter.stats.as_dict() == {
            "messages": 1,
            "datagrams": 3,
            "bytes": 10,
            "dropped": 0,
            "truncated": 0,
            "refused": 0,
            "errors": 0,
        }
    finally:
        await closed(emitter)


@ALL_LOOPS
async def test_emitter_lifecycle_misuse_is_a_state_error(receiver: socket.socket) -> None:
    """Asking a not-started emitter for its socket, or starting it twice, is StateError."""
    emitter = Emitter(*receiver.getsockname())
    with pytest.raises(StateError, match="not started"):
        _ = emitter.local_address
    with pytest.raises(StateError, match="not started"):
        _ = emitter.socket
    async with emitter:
        with pytest.raises(StateError, match="already started"):
            await emitter.start()
        assert emitter.local_address == emitter.socket.getsockname()
    assert issubclass(StateError, RuntimeError)  # callers catching RuntimeError still do


def test_socket_emitter_after_close_is_a_state_error(receiver: socket.socket) -> None:
    """A closed SocketEmitter has no socket: StateError, and emit() still never raises."""
    emitter = SocketEmitter(*receiver.getsockname())
    assert emitter.local_address == emitter.socket.getsockname()
    emitter.close()
    with pytest.raises(StateError, match="closed"):
        _ = emitter.socket
    with pytest.raises(StateError, match="closed"):
        _ = emitter.local_address
    assert emitter.emit("after close") == 0
    assert emitter.stats.dropped == 1
