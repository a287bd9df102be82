"""Whether a host or an address is this machine's loopback: one answer for the package.

Servers ask it before binding (anything else needs ``all_interfaces``), the web
views before showing a traceback or skipping their token, the UDP reflection guard
about a datagram's source, and the test kit's ``loopback_only`` before letting
traffic out.  None of them resolves a name: only ``localhost`` itself counts.
"""

from __future__ import annotations

import ipaddress
import socket

from .errors import ConfigurationError

__all__ = ["DEFAULT_HOST", "check_bind_host", "is_loopback_address", "is_loopback_host"]

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


DEFAULT_HOST = "127.0.0.1"
"""Servers listen on loopback unless told otherwise."""


def check_bind_host(host: str | None, all_interfaces: bool) -> str | None:
    """Return the host to pass to asyncio, refusing an implicit all-interfaces bind.

    ``None``, ``""``, ``0.0.0.0`` and ``::`` all mean "every interface" to the
    socket layer; asyncnet only binds that way when ``all_interfaces=True``.
    """
    if host is not None and not isinstance(host, str):
        raise ConfigurationError(f"host must be a str or None, not {host!r}")
    if all_interfaces:
        if host not in (None, "", DEFAULT_HOST) and not _is_unspecified(host):
            raise ConfigurationError(
                f"all_interfaces=True binds every interface; do not also pass host={host!r}"
            )
        return None
    if host is None or host == "" or _is_unspecified(host):
        raise ConfigurationError(
            f"host={host!r} would listen on every interface; "
            "pass all_interfaces=True if that is what you want"
        )
    return host


def _is_unspecified(host: str | None) -> bool:
    if not host:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        pass
    # getaddrinfo also takes inet_aton's short forms: "0" and "0.0" are 0.0.0.0 too.
    try:
        return socket.inet_aton(host) == b"\0\0\0\0"
    except (OSError, ValueError):
        return False
