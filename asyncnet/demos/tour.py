"""``make demo``: each tutorial demo against its own local server, in one process.

    python -m asyncnet.demos.tour

Every stop starts its servers on ephemeral loopback ports, plays a scripted client
session and prints the exchange, so the whole tour runs offline and leaves nothing
behind.  Each stop is a short coroutine in :data:`STOPS`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .. import DatagramClient, LineClient, run, tcp_server, udp_server
from ..errors import format_peer
from .upper import Upper, UpperDatagram


async def upper_stop() -> None:
    """SockServTCP.py / SockServUDP.py: the upper-case service over TCP and UDP."""
    async with tcp_server(Upper) as tcp, udp_server(UpperDatagram) as udp:
        print(f"  servers: tcp://{format_peer(tcp.address)} udp://{format_peer(udp.address)}")
        async with await LineClient.connect(*tcp.address, timeout=5) as client:
            print(f"  TCP client {format_peer(client.local_address)}")
            for line in ("hello, world", "Network programming in Python", "LinuxWorld 2004"):
                print(f"    > {line}\n    < {await client.request(line)}")
            await client.send_line("")  # the tutorial's blank line ends the session
            print(f"    > (blank line)\n    < {await client.read_line()!r} (server closed)")
        async with await DatagramClient.connect(*udp.address, timeout=2) as dgram:
            print(f"  UDP client {format_peer(dgram.local_address)}")
            for text in (b"spam and eggs", b"Mr. Creosote"):
                print(f"    > {text!r}\n    < {await dgram.request(text)!r}")
    print(
        f"  tcp stats: {tcp.stats.connections_total} connection(s), "
        f"{tcp.stats.bytes_in} bytes in, {tcp.stats.bytes_out} bytes out"
    )


STOPS: list[tuple[str, Callable[[], Awaitable[None]]]] = [
    ("upper", upper_stop),
]
"""The tour, in order: (name, coroutine function)."""


async def tour() -> None:
    """Run every stop of the tour in turn."""
    for name, stop in STOPS:
        print(f"== {name}: {(stop.__doc__ or '').strip()}")
        await stop()
        print()


def main() -> int:
    """Run the tour (uvloop when installed)."""
    run(tour())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
