"""The hosts-file parser: plain code, no I/O, no resolver.

:meth:`Hosts.parse` reads the text of a hosts file (``/etc/hosts`` and its Windows
twin) as the C library does: ``address name [alias...]`` per line, ``#`` starts a
comment, and a line whose address does not parse is skipped.  :meth:`Hosts.addresses`
and :meth:`Hosts.names` answer the two questions a resolver asks of it.  Names match
whatever their case and with or without a trailing dot (:func:`fold_name`).  Reading
the file, and deciding which questions it answers, is
:mod:`asyncnet.dns._resolver`'s job.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["Hosts", "HostsEntry", "IPAddress", "fold_name"]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address


def fold_name(name: str) -> str:
    """``name`` as host names compare: lower case, without a trailing dot."""
    return name.removesuffix(".").lower()


@dataclass(frozen=True, slots=True)
class HostsEntry:
    """One line of a hosts file: an address and its names, the canonical one first."""

    address: IPAddress
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Hosts:
    """A parsed hosts file, in file order (plain code: no I/O, no resolver)."""

    entries: tuple[HostsEntry, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Hosts:
        """Parse hosts-file text; comments, blank lines and bad addresses are skipped."""
        entries = []
        for line in text.splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2:
                continue
            try:
                address = ipaddress.ip_address(fields[0])
            except ValueError:
                continue  # the C library skips such lines too
            entries.append(HostsEntry(address, tuple(fields[1:])))
        return cls(tuple(entries))

    def addresses(self, name: str) -> list[str]:
        """Every address listed for ``name`` (any case, trailing dot ignored), in file order."""
        wanted = fold_name(name)
        found = (e.address for e in self.entries if any(fold_name(n) == wanted for n in e.names))
        return [str(a) for a in dict.fromkeys(found)]

    def names(self, address: str | IPAddress) -> tuple[str, ...]:
        """The names of the first line listing ``address`` (canonical first); () if none.

        An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) also matches its IPv4 line.
        """
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        for candidate in candidates:
            for entry in self.entries:
                if entry.address == candidate:
                    return entry.names
        return ()
