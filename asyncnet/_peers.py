"""Which peers count as one: the key a per-peer limit is kept under.

A login penalty or a per-peer allowance (CGI scripts) is kept per *host*, not per
connection, or a peer escapes it by opening more connections; an IPv6 host commonly
holds a whole /64, so an IPv6 peer counts by its /64.
"""

from __future__ import annotations

import ipaddress
from typing import Any

__all__ = ["peer_key"]


def peer_key(peer: Any) -> str:
    """The host a penalty is kept for: the address of a ``(host, port, ...)`` tuple, an
    IPv6 address by its /64, ``"local"`` for a Unix socket peer."""
    host = peer[0] if isinstance(peer, tuple) and peer else peer
    if not host or not isinstance(host, str):
        return "local"
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)
