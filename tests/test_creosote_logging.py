"""CreosoteHandler: logging records as creosote messages, never hurting the program that logs."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator

import pytest

from asyncnet.creosote import Bucket, CreosoteHandler, Emitter, Message, Subscription


def closed_udp_port() -> int:
    """A loopback UDP port that nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A private logger that does not propagate to the root (and pytest's capture)."""
    log = logging.getLogger(f"creosote-test-{id(object())}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


async def take(subscription: Subscription, count: int) -> list[Message]:
    out: list[Message] = []
    async with asyncio.timeout(10):
        while len(out) < count:
            out.append(await anext(subscription))
    return out


async def test_records_reach_the_bucket_formatted(logger: logging.Logger) -> None:
    async with Bucket(port=0) as bucket:
        handler = CreosoteHandler(*bucket.address)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.info("starting %s", "up")
        logger.debug("a detail with a newline\nand \x1b[31m colour")
        messages = await take(aiter(bucket), 2)
    assert messages[0].data == f"INFO {logger.name}: starting up".encode()
    assert messages[1].text.endswith("a detail with a newline\\nand \\x1b[31m colour")
    assert all(m.framed for m in messages)  # framed by default: tracebacks stay whole
    assert handler.stats.messages == 2


async def test_a_long_traceback_arrives_in_one_piece(logger: logging.Logger) -> None:
    async with Bucket(port=0) as bucket:
        logger.addHandler(CreosoteHandler(*bucket.address))

        def recurse(depth: int) -> None:
            if depth == 0:
                raise RuntimeError("deep failure: " + "context " * 200)
            recurse(depth - 1)

        try:
            recurse(30)
        except RuntimeError:
            logger.exception("it broke")
        [message] = await take(aiter(bucket), 1)
    assert message.chunks > 1
    assert message.complete
    text = message.data.decode()
    assert text.startswith("it broke\nTraceback")
    assert text.endswith("RuntimeError: deep failure: " + "context " * 200)


async def test_no_bucket_listening_never_raises_or_complains(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    """C1 for logging: 1000 records at a closed port; no exception, no 'Logging error'."""
    handler = CreosoteHandler(port=closed_udp_port())
    logger.addHandler(handler)
    for n in range(1000):
        logger.warning("nobody is listening %d", n)
    # The refusal for an earlier datagram is reported on a later send: keep logging,
    # bounded, until one has come back.
    async with asyncio.timeout(5):
        while handler.stats.refused == 0:
            logger.warning("still nobody")
            await asyncio.sleep(0.001)
    assert handler.stats.messages >= 1000
    assert "Logging error" not in capsys.readouterr().err


async def test_uses_a_given_emitter_on_its_loop(logger: logging.Logger) -> None:
    async with Bucket(port=0) as bucket, Emitter(*bucket.address, framed=True) as emitter:
        handler = CreosoteHandler(*bucket.address, emitter=emitter)
        logger.addHandler(handler)
        logger.error("through the emitter")
        [message] = await take(aiter(bucket), 1)
        assert message.sender == emitter.local_address
        assert emitter.stats.messages == 1
        assert handler.stats.messages == 0

        # From another thread (no running loop there) it falls back to its own socket.
        thread = threading.Thread(target=logger.error, args=("from a thread",))
        thread.start()
        await asyncio.to_thread(thread.join, 5)
        [threaded] = await take(aiter(bucket), 1)
        assert threaded.data == b"from a thread"
        assert threaded.sender != emitter.local_address
        assert handler.stats.messages == 1

    logger.error("after the emitter closed")  # falls back too, still no exception
    assert handler.stats.messages == 2


def test_works_without_any_event_loop(logger: logging.Logger) -> None:
    """Plain synchronous program: emit() needs no loop and never starts one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        logger.addHandler(CreosoteHandler(*receiver.getsockname(), framed=False))
        logger.critical("no asyncio here")
        data, _ = receiver.recvfrom(65535)
    assert data == b"no asyncio here"
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


async def test_oversized_record_is_truncated_with_the_marker(logger: logging.Logger) -> None:
    """C3: a huge record is cut at max_message_size, and says so."""
    async with Bucket(port=0) as bucket:
        logger.addHandler(CreosoteHandler(*bucket.address, max_message_size=4096))
        logger.error("x" * 100_000)
        [message] = await take(aiter(bucket), 1)
    assert len(message.data) == 4096
    assert message.truncated
    assert message.data.endswith(b"...[creosote: message truncated]")


def test_closed_handler_is_quiet(logger: logging.Logger) -> None:
    handler = CreosoteHandler(port=closed_udp_port())
    logger.addHandler(handler)
    logger.error("before close")
    handler.close()
    logger.error("after close")  # logging may still call a closed handler: nothing happens
    assert handler.stats.messages == 1
