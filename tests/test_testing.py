"""asyncnet.testing itself: the loopback guard must refuse, and must let loopback through."""

from __future__ import annotations

import asyncio
import socket

import pytest

from asyncnet.testing import NonLoopbackTraffic, is_loopback, loopback_only

TEST_NET = "192.0.2.1"  # TEST-NET-1 (RFC 5737): documentation only, never routed to


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (("127.0.0.1", 1), True),
        (("127.3.2.1", 1), True),
        (("::1", 1, 0, 0), True),
        (("::ffff:127.0.0.1", 1, 0, 0), True),
        (("localhost", 1), True),
        ("/tmp/some.sock", True),
        ((TEST_NET, 1), False),
        (("example.invalid", 1), False),
        (("::", 1, 0, 0), False),
        (("::1%lo", 1, 0, 0), True),
        (("[::1]", 1), True),
        ((b"127.0.0.1", 1), True),
        (("LocalHost", 1), True),
        (("::ffff:10.0.0.1", 1, 0, 0), False),
        (("0.0.0.0", 1), False),
        (("", 1), False),
    ],
)
def test_is_loopback(address: object, expected: bool) -> None:
    """The package's one loopback predicate (servers, web views, reflection guard and
    this kit), in every spelling; a name other than localhost would need DNS: False."""
    assert is_loopback(address) is expected


def test_guard_refuses_connect_and_sendto_before_any_syscall() -> None:
    with loopback_only() as refused:
        with socket.socket() as sock, pytest.raises(NonLoopbackTraffic):
            sock.connect((TEST_NET, 9))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            with pytest.raises(PermissionError):
                udp.sendto(b"x", (TEST_NET, 9))
            udp.sendto(b"x", ("127.0.0.1", 9))  # loopback passes
    assert len(refused) == 2


async def test_guard_stops_asyncio_connections_too() -> None:
    with loopback_only() as refused:
        with pytest.raises(OSError):
            await asyncio.open_connection(TEST_NET, 9)
    assert refused
