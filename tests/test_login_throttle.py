"""LoginThrottle: the per-peer penalty shared by the POP3 and FTP servers' logins.

The throttle is driven directly here (no sockets: it sees only peer addresses); the
servers' own tests show it wired to real connections.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from asyncnet._peers import peer_key
from asyncnet.errors import ConfigurationError
from asyncnet.servers import LoginThrottle

pytestmark = pytest.mark.timeout(10)


async def _try(throttle: LoginThrottle, peer: object, ok: bool) -> bool:
    async with throttle.attempt(peer) as attempt:
        if not attempt.admitted:
            return False
        if ok:
            attempt.succeeded()
        else:
            attempt.failed()
        return True


def test_peer_key_groups_by_host() -> None:
    assert peer_key(("127.0.0.1", 4000)) == peer_key(("127.0.0.1", 5000)) == "127.0.0.1"
    assert peer_key(("::1", 1, 0, 0)) == "::/64"
    assert peer_key(("2001:db8::1", 1, 0, 0)) == peer_key(("2001:db8::ffff", 2, 0, 0))
    assert peer_key(("::ffff:127.0.0.1", 1, 0, 0)) == "127.0.0.1"
    assert peer_key(None) == peer_key("") == "local"


def test_delays_double_up_to_the_cap() -> None:
    throttle = LoginThrottle(first_delay=1.0, max_delay=5.0)
    assert [throttle.delay(n) for n in range(6)] == [0.0, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert LoginThrottle(first_delay=0, max_delay=0).delay(10) == 0.0


@pytest.mark.parametrize("kwargs", [{"first_delay": -1}, {"max_delay": 0.1}, {"max_peers": 0}])
def test_bad_settings_are_configuration_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        LoginThrottle(**kwargs)


async def test_parallel_guesses_from_one_host_are_serialised_and_then_refused() -> None:
    """Forty connections from one host get one guess per delay, not forty at once."""
    throttle = LoginThrottle(first_delay=0.05, max_delay=0.2)
    peers = [("127.0.0.1", 40000 + i) for i in range(40)]
    loop = asyncio.get_running_loop()
    start = loop.time()
    results = await asyncio.gather(*(_try(throttle, p, ok=False) for p in peers))
    checked = sum(results)
    # The first is checked at once and fails: its reply waits 0.05 s, holding the
    # turn.  The second queues for the next delay (0.1 s); the third would wait
    # 0.1 + 0.2 s > max_delay if the second fails too, so it and every later one are
    # refused unchecked instead of held open.
    assert checked == 2
    assert throttle.refused_logins == 40 - checked
    assert throttle.failed_logins == checked
    assert loop.time() - start >= 0.05 * (checked - 1)


async def test_another_host_is_not_slowed() -> None:
    throttle = LoginThrottle(first_delay=30.0, max_delay=60.0)
    slow = asyncio.create_task(_try(throttle, ("127.0.0.2", 1), ok=False))
    await asyncio.sleep(0)
    async with asyncio.timeout(1):
        assert await _try(throttle, ("127.0.0.3", 1), ok=True)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    # The cancelled attempt gave its turn back: the next one from that host is checked.
    async with asyncio.timeout(1), throttle.attempt(("127.0.0.2", 2)) as attempt:
        assert attempt.admitted


async def test_success_forgets_failures_and_no_state_is_kept() -> None:
    throttle = LoginThrottle(first_delay=0.01, max_delay=0.05)
    assert await _try(throttle, ("127.0.0.1", 1), ok=False)
    assert throttle.failures(("127.0.0.1", 9)) == 1
    assert await _try(throttle, ("127.0.0.1", 2), ok=True)
    assert throttle.failures(("127.0.0.1", 9)) == 0
    assert len(throttle) == 0


async def test_failures_are_forgotten_after_the_window() -> None:
    now = [0.0]
    throttle = LoginThrottle(first_delay=0, max_delay=0, forget_after=60, clock=lambda: now[0])
    for _ in range(3):
        assert await _try(throttle, ("127.0.0.1", 1), ok=False)
    assert throttle.failures("127.0.0.1") == 3
    now[0] = 61.0
    assert throttle.failures("127.0.0.1") == 0


async def test_memory_is_bounded_by_max_peers() -> None:
    throttle = LoginThrottle(first_delay=0, max_delay=0, max_peers=50)
    for i in range(500):
        assert await _try(throttle, (f"127.0.{i // 250}.{i % 250}", 1), ok=False)
    assert len(throttle) <= 50


async def test_failures_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    throttle = LoginThrottle(first_delay=0, max_delay=0)
    with caplog.at_level(logging.WARNING, logger="asyncnet.server"):
        for _ in range(200):
            await _try(throttle, ("127.0.0.1", 1), ok=False)
    lines = [r for r in caplog.records if "failed logins" in r.getMessage()]
    assert len(lines) == 1
