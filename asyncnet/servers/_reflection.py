"""Refusing to answer datagrams that would start a reflection loop ("Loop DoS").

A UDP service that answers every datagram can be made to answer *another* such
service, or itself: one datagram with a forged source address sets two servers
bouncing replies at each other forever (CVE-2024-2169, the "Loop DoS" pattern; the
classic case is echo on port 7 talking to chargen on port 19).  A datagram server
therefore drops, unanswered and unhandled, every datagram whose source is

* its own address, or the address of another asyncnet datagram server in this
  process (``local_servers``): asyncnet servers never act as clients, so a datagram
  from one is a reply, and answering it is how the loop starts;
* a well-known reflector port (``reflector_ports``, by default echo 7, daytime 13,
  qotd 17, chargen 19 and time 37): services that answer anything with something;
* its own port on this host (``same_port``): another instance of the same service,
  e.g. a second upper demo on 127.0.0.2.  "This host" means a loopback address or
  the address the server is bound to (a server bound to every interface cannot
  cheaply list its interface addresses, so there only loopback and its own address
  count).

Those rules cannot see a loop with a server in another process on another port
(two upper demos on 127.0.0.1:9999 and 127.0.0.1:9998, one datagram to the second
forged from the first), nor one through a service on another host.  What every
such loop does is say the same things over and over: each server answers what
the other just answered, so the datagrams soon repeat (the same bytes, or a short
cycle of them), or come back as our own reply (an echoing peer).  Hence the reply
budget (:class:`ReplyBudget`):

* answered datagrams and our replies to them leave fingerprints (a hash of the
  bytes) in a fixed-size table: about one answer in 8 does, which is enough,
  since a loop repeats itself round after round;
* a datagram whose fingerprint is there (a repeat of something we answered
  lately, or one of our own replies sent back) costs its source (host, port) a
  token from its bucket: ``burst`` tokens, refilled at ``rate`` per second;
* a source with no token left is muted: nothing it sends is answered, and each
  datagram costs it another token, until it sends slower than ``rate``.  One
  unanswered datagram ends a loop (there is nothing left to bounce), and muting
  ends every loop through that source at once, even thousands started together.

Fingerprints are per server, not per source: many clients asking the same thing
each pay a token for it, which a client's budget absorbs; checking one costs a
hash and a lookup.

New datagrams cost nothing by default (``new_cost``): a client's distinct
requests are never limited, whatever their rate (a load generator sends 200,000 a
second from one port).  A loop never repeats only when *both* servers put
something new in every reply (each its own sequence number, say; one such server
facing an echoing or upper-casing one hears its own replies back);
``new_cost=1`` makes the budget a plain per-source rate limit, which ends those
too.

Drops are counted in ``server.stats.datagrams_reflected`` and logged at most once
per ``INTERVAL`` seconds per server for each kind (address rule, budget).

Configure it with ``DatagramServer(..., drop_sources=SourceFilter(...))``
(``SourceFilter(budget=ReplyBudget(...))``, or ``budget=None`` for the address
rules alone), or pass ``drop_sources=None`` to answer every source (a test harness
that talks to a server from another server, say).
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import math
import time
from dataclasses import dataclass, field
from random import getrandbits
from typing import TYPE_CHECKING, Any, Final

from .._loopback import is_loopback_host
from .._ratelimit import RateLimitedLog
from ..errors import ConfigurationError, format_peer

if TYPE_CHECKING:
    from ._stats import ServerStats

logger = logging.getLogger("asyncnet.server")

__all__ = [
    "DEFAULT_REFLECTOR_PORTS",
    "ReplyBudget",
    "SourceFilter",
    "SourceGuard",
    "check_filter",
    "guard_for",
]

DEFAULT_REFLECTOR_PORTS: Final = frozenset({7, 13, 17, 19, 37})
"""echo, daytime, qotd, chargen, time: UDP services that answer anything."""

# Every bound asyncnet datagram server in this process, so that two of them never
# answer each other.  Counted, not a set: two servers may share an address
# (reuse_port workers).
_local_addresses: collections.Counter[tuple[str, int]] = collections.Counter()
_local_ports: collections.Counter[int] = collections.Counter()


@dataclass(frozen=True, slots=True)
class ReplyBudget:
    """How many repeats one source may make us answer (see the module docstring).

    The defaults answer a client that fires the same request 2000 times at once (a
    test, a poll that fell behind and catches up) and one that repeats itself 20
    times a second for ever (retries, keep-alives, polling), while a loop between
    two servers on one host, which runs at tens of thousands of datagrams a second,
    runs out after 2000 repeats: some 40 ms on a laptop.  A loop only has to be
    faster than ``rate`` to be stopped; a slower one is held to ``rate`` answers a
    second.  A source out of tokens is not answered at all until it sends slower
    than ``rate``.
    """

    burst: int = 2000
    """Repeats answered back to back before the source must slow down."""
    rate: float = 20.0
    """Tokens refilled per second (and so repeats answered per second, sustained)."""
    new_cost: float = 0.0
    """Tokens a datagram not seen before costs: 0 never limits distinct requests;
    1 makes the bucket a plain per-source rate limit of ``rate`` per second."""
    remembered: int = 4096
    """Fingerprint slots per server: half of them for the latest, half for the 1 in 32
    kept longer.  About 40 bytes each."""
    sources: int = 1024
    """Per-source buckets kept per server.  A source whose bucket has filled up again
    is forgotten (least recently used first) to make room; while none has, sources
    beyond the table share one bucket.  So a flood of forged sources neither grows
    the table nor buys anyone a fresh budget.  About 400 bytes each."""

    def __post_init__(self) -> None:
        for name in ("burst", "remembered", "sources"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"ReplyBudget {name} must be an int >= 1, not {value!r}")
        if self.remembered < 2:
            raise ConfigurationError(f"ReplyBudget remembered must be >= 2, not {self.remembered}")
        for name, least in (("rate", "> 0"), ("new_cost", ">= 0")):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or (value <= 0 if name == "rate" else value < 0)
            ):
                raise ConfigurationError(
                    f"ReplyBudget {name} must be a finite number {least}, not {value!r}"
                )
        if self.new_cost > self.burst:
            raise ConfigurationError(
                f"ReplyBudget new_cost ({self.new_cost}) above burst ({self.burst}) "
                "would drop every new datagram"
            )


@dataclass(frozen=True, slots=True)
class SourceFilter:
    """Which datagram sources a server drops unanswered (see the module docstring)."""

    reflector_ports: frozenset[int] = DEFAULT_REFLECTOR_PORTS
    """Source ports never answered, from any host."""
    same_port: bool = True
    """Drop datagrams from the server's own port on this host."""
    local_servers: bool = True
    """Drop datagrams from the address of any asyncnet datagram server in this process."""
    extra_sources: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    """Further ``(host, port)`` sources to drop."""
    budget: ReplyBudget | None = ReplyBudget()
    """The per-source reply budget; ``None`` answers repeats without limit."""

    def __post_init__(self) -> None:
        if self.budget is not None and not isinstance(self.budget, ReplyBudget):
            raise ConfigurationError(
                f"SourceFilter budget must be a ReplyBudget or None, not {self.budget!r}"
            )
        ports = frozenset(self.reflector_ports)
        bad = [port for port in ports if not 0 < port <= 65535]
        if bad:
            raise ConfigurationError(f"reflector_ports must be in 1..65535, not {sorted(bad)!r}")
        object.__setattr__(self, "reflector_ports", ports)
        object.__setattr__(
            self, "extra_sources", frozenset((str(h), int(p)) for h, p in self.extra_sources)
        )


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class SourceGuard:
    """One bound server's filter: ``admit()`` on every datagram, cheap when clean."""

    __slots__ = (
        "_buckets",
        "_budget",
        "_budget_log",
        "_countdown",
        "_filter",
        "_listed",
        "_log",
        "_muted",
        "_name",
        "_overflow",
        "_own",
        "_own_host",
        "_ports",
        "_rare",
        "_recent",
        "_slots",
        "_stats",
    )

    def __init__(
        self, source_filter: SourceFilter, sockname: Any, stats: ServerStats, name: str
    ) -> None:
        self._filter = source_filter
        self._stats = stats
        self._name = name
        self._own = (_normal(sockname[0]), int(sockname[1]))
        self._own_host = self._own[0]
        # Ports worth a closer look; another server's port is checked via _local_ports.
        ports = set(source_filter.reflector_ports) | {p for _, p in source_filter.extra_sources}
        if source_filter.same_port:
            ports.add(self._own[1])
        self._ports = frozenset(ports)
        self._log = RateLimitedLog()
        self._budget = source_filter.budget
        self._budget_log = RateLimitedLog()
        # Fingerprints live in fixed tables, one slot each, chosen by the fingerprint
        # itself; a new one takes the slot of whatever was there.  No growing, no
        # sweeping: a lookup per datagram, two stores per answer remembered.  A
        # loop's fingerprints come back every round, so they stay.  "recent" takes
        # every fingerprint stored; "rare" only the 1 in _RARE + 1 whose low bits
        # are zero, so it reaches that many times further back: thousands of loops
        # at once (one forged datagram each) cycle through more fingerprints than
        # "recent" keeps, but a share of them is still recognised there, and a
        # source out of budget is muted, which ends them all.
        self._slots = (self._budget.remembered // 2) if self._budget is not None else 1
        self._recent = [_EMPTY] * self._slots
        self._rare = [_EMPTY] * self._slots
        self._buckets: collections.OrderedDict[Any, _Bucket] = collections.OrderedDict()
        self._muted: set[Any] = set()
        self._overflow = _Bucket(float(self._budget.burst) if self._budget else 0.0, 0.0)
        self._countdown = 1  # the first answer leaves its fingerprints, then 1 in ~_EVERY
        self._listed = False
        if source_filter.local_servers:
            _local_addresses[self._own] += 1
            _local_ports[self._own[1]] += 1
            self._listed = True

    def admit(self, data: bytes, addr: Any) -> int | None:
        """``None`` (counted, maybe logged) when ``data`` from ``addr`` must not be
        answered; else the fingerprint to pass to :meth:`answered` with the reply,
        or 0 when this answer need not be remembered."""
        try:
            port = addr[1]
        except (TypeError, IndexError):
            return 0
        # The common case: one set lookup, one dict lookup.
        if (port in self._ports or port in _local_ports) and self.drops(addr):
            return None
        budget = self._budget
        if budget is None:
            return 0
        # Inline for the usual short datagram: this runs for every one.
        key = hash(data) if len(data) <= _WHOLE else _fingerprint(data)
        if (
            self._recent[key % self._slots] == key
            or (not key & _RARE and self._rare[(key >> _RARE_BITS) % self._slots] == key)
            or (self._muted and addr in self._muted)
        ):
            cost = max(1.0, budget.new_cost)
        else:
            cost = budget.new_cost
        if cost and not self._spend(addr, cost, budget):
            self._stats.datagrams_reflected += 1
            since = self._budget_log.hit(time.monotonic())
            if since:
                logger.warning(
                    "%s: not answering %s until it slows down: it repeats what we "
                    "already answered, beyond its budget of %d and %g/s (%d datagram(s) "
                    "dropped, %d so far): answering could keep a reflection loop going",
                    self._name,
                    format_peer(addr),
                    budget.burst,
                    budget.rate,
                    since,
                    self._stats.datagrams_reflected,
                )
            return None
        # Only one answer in about _EVERY leaves its fingerprints (the answer the
        # countdown lands on): storing them costs more than looking them up, and
        # a loop repeats the same datagrams round after round, so it is remembered
        # within a few rounds and recognised at every repeat from then on.  The
        # countdown restarts at _EVERY or _EVERY + 1 at random, so that no steady
        # rhythm keeps it off a loop: ten loops answered in turn, with the step
        # chosen by the fingerprint's own bit, could land on six of them for ever
        # and leave the other four unrecognised until the source ran out of budget.
        self._countdown -= 1
        if self._countdown:
            return 0
        self._countdown = _EVERY + getrandbits(1)
        return key

    def answered(self, key: int, reply: bytes) -> None:
        """Remember that the datagram with fingerprint ``key`` got ``reply``."""
        # Our reply too: a peer that sends back what we said is in a loop with us even
        # when our own answers never repeat (a handler that numbers or timestamps
        # them), and an echoing peer is the classic reflector.
        echo = (
            hash(reply)
            if reply.__class__ is bytes and len(reply) <= _WHOLE
            else _fingerprint(reply)
        )
        slots = self._slots
        recent = self._recent
        recent[key % slots] = key
        recent[echo % slots] = echo
        if key & _RARE and echo & _RARE:
            return
        if not key & _RARE:
            self._rare[(key >> _RARE_BITS) % slots] = key
        if not echo & _RARE:
            self._rare[(echo >> _RARE_BITS) % slots] = echo

    def _spend(self, addr: Any, cost: float, budget: ReplyBudget) -> bool:
        """Take ``cost`` tokens from the bucket of ``addr``; False (and muted) if short.

        A muted source pays a token for every datagram, new or not, and is heard
        again once a token has built up: only by sending slower than ``rate``.  So
        every loop through it ends, even those whose repeats are too far apart to
        be recognised, and a client that overspent is heard again when it calms down.
        """
        buckets = self._buckets
        now = time.monotonic()
        bucket = buckets.get(addr)
        if bucket is not None:
            buckets.move_to_end(addr)
        elif len(buckets) < budget.sources or self._evict_full(now, budget):
            bucket = buckets[addr] = _Bucket(float(budget.burst), now)
        else:
            # Every source in the table still owes tokens: forgetting one would hand
            # it a fresh budget (a flood of forged sources would buy a loop a new
            # burst that way).  Newcomers share one bucket until a place frees up.
            bucket = self._overflow
        bucket.tokens = min(float(budget.burst), bucket.tokens + (now - bucket.stamp) * budget.rate)
        bucket.stamp = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            if self._muted:
                self._muted.discard(addr)
            return True
        bucket.tokens = max(0.0, bucket.tokens - cost)
        if bucket is not self._overflow:  # the muted are a subset of the table: bounded
            self._muted.add(addr)
        return False

    def _evict_full(self, now: float, budget: ReplyBudget) -> bool:
        """Forget the least recently used source if its bucket has filled up again
        (then it is no different from a new one); False if it still owes tokens."""
        addr, bucket = next(iter(self._buckets.items()))
        if bucket.tokens + (now - bucket.stamp) * budget.rate < budget.burst:
            return False
        del self._buckets[addr]
        self._muted.discard(addr)
        return True

    def drops(self, addr: Any) -> bool:
        """True (and counted, and maybe logged) when an address rule refuses ``addr``."""
        try:
            port = addr[1]
        except (TypeError, IndexError):
            return False
        if port not in self._ports and port not in _local_ports:
            return False
        reason = self._reason(_normal(addr[0]), port)
        if reason is None:
            return False
        self._stats.datagrams_reflected += 1
        since = self._log.hit(time.monotonic())
        if since:
            logger.warning(
                "%s: dropped %d datagram(s) from %s unanswered (%s; %d so far): "
                "answering could start a reflection loop",
                self._name,
                since,
                format_peer(addr),
                reason,
                self._stats.datagrams_reflected,
            )
        return True

    def _reason(self, host: str, port: int) -> str | None:
        source = (host, port)
        f = self._filter
        if source == self._own:
            return "our own address"
        if f.local_servers and source in _local_addresses:
            return "another asyncnet datagram server"
        if port in f.reflector_ports:
            return f"reflector port {port}"
        if (
            f.same_port
            and port == self._own[1]
            and (host == self._own_host or is_loopback_host(host))
        ):
            return "our own port on this host"
        if source in f.extra_sources:
            return "listed in drop_sources"
        return None

    def close(self) -> None:
        """Forget this server's address (it no longer listens)."""
        if self._listed:
            self._listed = False
            _forget(_local_addresses, self._own)
            _forget(_local_ports, self._own[1])


def check_filter(source_filter: Any) -> SourceFilter | None:
    """``source_filter`` if it is a :class:`SourceFilter` or ``None``; else ConfigurationError."""
    if source_filter is not None and not isinstance(source_filter, SourceFilter):
        raise ConfigurationError(
            f"drop_sources must be a SourceFilter or None, not {source_filter!r}"
        )
    return source_filter


def guard_for(
    source_filter: SourceFilter | None, sockname: Any, stats: ServerStats, name: str
) -> SourceGuard | None:
    """The guard for a server just bound to ``sockname`` (``None``: answer everybody)."""
    if source_filter is None:
        return None
    return SourceGuard(source_filter, sockname, stats, name)


_EVERY = 8
"""About one answer in this many leaves its fingerprints."""
_RARE_BITS = 5
_RARE = (1 << _RARE_BITS) - 1
"""Fingerprints with these bits all zero (1 in 32 of those stored) are kept in the
long memory too (indexed by the bits above them)."""
_EMPTY = -1
"""An empty slot: hash() never returns -1."""
_WHOLE = 1024
"""Datagrams up to this size are fingerprinted whole."""
_END = 512
"""Of longer ones, the length and this much of each end: hashing all of 64 KiB takes
some 16 us, and a repeat is told from a new datagram as surely by its ends."""


def _fingerprint(data: bytes) -> int:
    """``hash(data)`` as admit() computes it inline, or a long datagram's."""
    if data.__class__ is not bytes:
        data = bytes(data)  # a handler may answer with a bytearray or memoryview
    if len(data) <= _WHOLE:
        return hash(data)
    return hash((len(data), data[:_END], data[-_END:]))


def _forget(counter: collections.Counter[Any], key: Any) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def _normal(host: Any) -> str:
    text = host.decode() if isinstance(host, bytes) else str(host)
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)
