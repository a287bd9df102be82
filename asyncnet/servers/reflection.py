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

Drops are counted in ``server.stats.datagrams_reflected`` and logged at most once
per ``INTERVAL`` seconds per server.  What this cannot see: a loop through a
different service on another host or on an unlisted port; for those the server's
``max_pending`` and the kernel's buffers are the only brakes.

Configure it with ``DatagramServer(..., drop_sources=SourceFilter(...))``, or pass
``drop_sources=None`` to answer every source (a test harness that talks to a
server from another server, say).
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from .._loopback import is_loopback_host
from ..errors import ConfigurationError, format_peer
from ._accept_errors import RateLimitedLog

if TYPE_CHECKING:
    from .stats import ServerStats

logger = logging.getLogger("asyncnet.server")

__all__ = ["DEFAULT_REFLECTOR_PORTS", "SourceFilter", "SourceGuard", "check_filter", "guard_for"]

DEFAULT_REFLECTOR_PORTS: Final = frozenset({7, 13, 17, 19, 37})
"""echo, daytime, qotd, chargen, time: UDP services that answer anything."""

# Every bound asyncnet datagram server in this process, so that two of them never
# answer each other.  Counted, not a set: two servers may share an address
# (reuse_port workers).
_local_addresses: collections.Counter[tuple[str, int]] = collections.Counter()
_local_ports: collections.Counter[int] = collections.Counter()


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

    def __post_init__(self) -> None:
        ports = frozenset(self.reflector_ports)
        bad = [port for port in ports if not 0 < port <= 65535]
        if bad:
            raise ConfigurationError(f"reflector_ports must be in 1..65535, not {sorted(bad)!r}")
        object.__setattr__(self, "reflector_ports", ports)
        object.__setattr__(
            self, "extra_sources", frozenset((str(h), int(p)) for h, p in self.extra_sources)
        )


class SourceGuard:
    """One bound server's filter: ``drops(addr)`` on every datagram, cheap when clean."""

    __slots__ = ("_filter", "_listed", "_log", "_name", "_own", "_own_host", "_ports", "_stats")

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
        self._listed = False
        if source_filter.local_servers:
            _local_addresses[self._own] += 1
            _local_ports[self._own[1]] += 1
            self._listed = True

    def drops(self, addr: Any) -> bool:
        """True (and counted, and maybe logged) when ``addr`` must not be answered."""
        try:
            port = addr[1]
        except (TypeError, IndexError):
            return False
        if port not in self._ports and port not in _local_ports:
            return False  # the common case: one set lookup, one dict lookup
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
