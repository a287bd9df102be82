"""Whether a host or an address is this machine's loopback: one answer for the package.

Servers ask it before binding (anything else needs ``all_interfaces``), the web
views before showing a traceback or skipping their token, the UDP reflection guard
about a datagram's source, and the test kit's ``loopback_only`` before letting
traffic out.  None of them resolves a name: only ``localhost`` itself counts.
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback_address", "is_loopback_host"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_loopback_address(address: str | IPAddress) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (``::ffff:127.0.0.1``)."""
    try:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def is_loopback_host(host: str | bytes | None) -> bool:
    """True for ``localhost`` and loopback addresses, with or without ``[...]`` and a
    ``%scope``; ``None`` (every interface) and any other name: False."""
    if host is None:
        return False
    if isinstance(host, bytes):
        try:
            host = host.decode("ascii")
        except UnicodeDecodeError:
            return False
    host = host.strip("[]").split("%", 1)[0]
    return host.lower() == "localhost" or is_loopback_address(host)
