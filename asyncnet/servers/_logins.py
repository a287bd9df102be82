"""Slowing password guessing per peer, across all of that peer's connections.

A delay after each failed login only slows one connection: a guesser who opens forty
connections guesses forty times as fast.  :class:`LoginThrottle` keeps the penalty per
peer *host* instead (an IPv6 peer by its /64, since one host commonly holds a whole
/64), shared by every connection of one server, or of several servers given the same
throttle (the local POP3 server and the embedded FTP server each take one):

* a peer's login attempts are checked one at a time;
* after a failure the attempt keeps its turn for a delay that doubles with each
  failure in a row (``first_delay``, ``2 * first_delay``, ... up to ``max_delay``), so a
  peer gets at most one guess per delay however many connections it opens;
* an attempt that would wait longer than ``max_delay`` behind that peer's queue (each
  attempt ahead of it counted as a failure, with its doubled delay) is refused at
  once, without checking the password: a temporary lockout that also keeps a flood
  of attempts from holding connections open;
* failures are forgotten ``forget_after`` seconds after the last one, or at a
  successful login.

Refusals and failures are logged once per ``INTERVAL`` seconds per throttle, with the
count since the last line, so a guessing run cannot flood the log.

Usage, inside a protocol's login command::

    async with throttle.attempt(peer) as attempt:
        if not attempt.admitted:
            return "-ERR [AUTH] too many failed logins; try again later"
        if not check(user, password):
            attempt.failed()      # the reply waits out this peer's delay
            return "-ERR [AUTH] invalid user name or password"
        attempt.succeeded()
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .._peers import peer_key
from .._ratelimit import RateLimitedLog
from ..errors import ConfigurationError

__all__ = ["LoginAttempt", "LoginThrottle"]

logger = logging.getLogger("asyncnet.server")


class _Peer:
    __slots__ = ("failures", "last_failure", "lock", "waiting")

    def __init__(self) -> None:
        self.failures = 0
        self.last_failure = 0.0
        self.lock = asyncio.Lock()
        self.waiting = 0

    @property
    def idle(self) -> bool:
        return self.waiting == 0 and not self.lock.locked()


class LoginThrottle:
    """Per-peer login penalty: attempts one at a time, a doubling delay after each
    failure, a temporary lockout past ``max_delay`` (see the module docs)."""

    def __init__(
        self,
        *,
        first_delay: float = 1.0,
        max_delay: float = 30.0,
        forget_after: float = 900.0,
        max_peers: int = 10_000,
        service: str = "login",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if first_delay < 0 or max_delay < first_delay:
            raise ConfigurationError(
                f"login delays: need 0 <= first_delay <= max_delay, got {first_delay} and "
                f"{max_delay}"
            )
        if forget_after <= 0 or max_peers < 1:
            raise ConfigurationError("login throttle: forget_after and max_peers must be > 0")
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.max_peers = max_peers
        self.service = service
        self._clock = clock
        self._peers: collections.OrderedDict[str, _Peer] = collections.OrderedDict()
        self._log = RateLimitedLog()
        self.failed_logins = 0
        """Failed attempts seen, over all peers."""
        self.refused_logins = 0
        """Attempts refused unchecked because their peer was locked out."""

    def attempt(self, peer: Any) -> LoginAttempt:
        """An ``async with`` block for one login attempt from ``peer`` (a socket address
        tuple, a host string, or ``None`` for a Unix socket peer)."""
        return LoginAttempt(self, peer_key(peer))

    def failures(self, peer: Any) -> int:
        """Failures in a row that ``peer`` has now (0 once forgotten)."""
        state = self._peers.get(peer_key(peer))
        if state is None:
            return 0
        self._forget_if_due(state)
        return state.failures

    def delay(self, failures: int) -> float:
        """The delay that follows the ``failures``-th failure in a row."""
        if failures <= 0 or self.first_delay == 0:
            return 0.0
        return min(self.first_delay * 2.0 ** min(failures - 1, 62), self.max_delay)

    def _queue_wait(self, failures: int, queued: int) -> float:
        """The longest wait behind ``queued`` attempts if each of them fails in turn.

        Reckoned as if they all fail, since that is what a guesser's queue does; an
        attempt that succeeds holds its turn for no time at all.
        """
        wait = 0.0
        for n in range(failures + 1, failures + queued + 1):
            wait += self.delay(n)
            if wait > self.max_delay or wait == 0.0:
                break
        return wait

    def __len__(self) -> int:
        """Peers the throttle remembers (bounded by ``max_peers``)."""
        return len(self._peers)

    def _state(self, key: str) -> _Peer:
        state = self._peers.get(key)
        if state is None:
            state = self._peers[key] = _Peer()
            if len(self._peers) > self.max_peers:
                self._prune()
        else:
            self._peers.move_to_end(key)
        self._forget_if_due(state)
        return state

    def _forget_if_due(self, state: _Peer) -> None:
        if state.failures and self._clock() - state.last_failure > self.forget_after:
            state.failures = 0

    def _prune(self) -> None:
        # Oldest first; a peer with an attempt in progress stays, whatever its age.
        for key in [k for k, s in self._peers.items() if s.idle]:
            if len(self._peers) <= self.max_peers:
                break
            del self._peers[key]

    def _release(self, key: str, state: _Peer) -> None:
        state.lock.release()
        if state.idle and state.failures == 0:
            self._peers.pop(key, None)

    def _report(self, what: str, key: str, state: _Peer) -> None:
        since = self._log.hit(self._clock())
        if since:
            logger.warning(
                "%s: %s from %s (%d failures in a row; %d such events since the last line)",
                self.service,
                what,
                key,
                state.failures,
                since,
            )


class LoginAttempt:
    """One login attempt's turn; ``admitted`` is False when its peer is locked out."""

    __slots__ = ("_key", "_outcome", "_state", "_throttle", "admitted")

    def __init__(self, throttle: LoginThrottle, key: str) -> None:
        self._throttle = throttle
        self._key = key
        self._state: _Peer | None = None
        self._outcome: bool | None = None
        self.admitted = False

    def failed(self) -> None:
        """The credentials were wrong: the reply waits out the peer's new delay."""
        self._outcome = False

    def succeeded(self) -> None:
        """The credentials were right: the peer's failures are forgotten."""
        self._outcome = True

    async def __aenter__(self) -> LoginAttempt:
        throttle = self._throttle
        state = self._state = throttle._state(self._key)
        queued = state.waiting + (1 if state.lock.locked() else 0)
        if queued and throttle._queue_wait(state.failures, queued) > throttle.max_delay:
            throttle.refused_logins += 1
            throttle._report("login refused, peer locked out", self._key, state)
            return self
        state.waiting += 1
        try:
            await state.lock.acquire()
        finally:
            state.waiting -= 1
        self.admitted = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        state = self._state
        if not self.admitted or state is None:
            return
        throttle = self._throttle
        try:
            if self._outcome is True:
                state.failures = 0
            elif self._outcome is False:
                state.failures += 1
                state.last_failure = throttle._clock()
                throttle.failed_logins += 1
                if state.failures >= 3:
                    throttle._report("failed logins", self._key, state)
                if exc_type is None:
                    await asyncio.sleep(throttle.delay(state.failures))
        finally:
            throttle._release(self._key, state)
