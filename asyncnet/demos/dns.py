"""The tutorial's DNS helpers (gethostname, getfqdn, gethostbyaddr), asynchronous.

    python -m asyncnet.demos.dns                     # localhost, 127.0.0.1, ::1: all offline
    python -m asyncnet.demos.dns example.org 192.0.2.1 nosuch.invalid --timeout 1
    python -m asyncnet.demos.dns --network           # let DNS answer ::1 and the FQDN too

Names are looked up forward (name -> addresses), IP addresses in reverse
(address -> name), all at once, each with its own timeout.  A name that does not
resolve or a resolver that does not answer gives one error line; the others
still print.

Local questions never leave the machine, so the default run sends nothing to the
network: localhost and *.localhost get the hosts file's addresses (else 127.0.0.1
and ::1, RFC 6761); a loopback address (127.x.y.z, ::1) gets its name from the hosts
file, or an error saying DNS was not asked; the FQDN is worked out from the hosts
file, or is the plain host name, marked "DNS was not asked".  --network hands the
loopback addresses and the FQDN to the system resolver, which may ask DNS (localhost
names stay local).  Other names and addresses you type always go to the resolver.
"""

from __future__ import annotations

import argparse
import asyncio

from .. import run
from ..dns import DEFAULT_QUERIES, HOSTS_FILE, HostsPath, host_name, lookup_all, lookup_fqdn
from . import _cli as cli


async def resolve(
    queries: list[str],
    timeout: float,
    *,
    allow_network: bool = False,
    hosts_file: HostsPath | None = None,
) -> int:
    """Print the host name, the FQDN and every lookup; 1 if any lookup failed."""
    print(f"host name: {host_name()}")
    async with asyncio.TaskGroup() as group:  # the FQDN and the lookups run together
        full = group.create_task(
            lookup_fqdn(timeout=timeout, allow_network=allow_network, hosts_file=hosts_file)
        )
        answers = group.create_task(
            lookup_all(queries, timeout=timeout, allow_network=allow_network, hosts_file=hosts_file)
        )
    name = full.result()
    note = f" ({name.note})" if name.note else ""
    print(f"FQDN:      {name.results[0] + note if name.ok else f'error: {name.error}'}")
    width = max(map(len, queries), default=0)
    for answer in answers.result():
        print(answer.line(width))
    return 0 if all(a.ok for a in answers.result()) else 1


def main(argv: list[str] | None = None) -> int:
    """Look up the names and addresses given (default: localhost, 127.0.0.1, ::1)."""
    parser = cli.parser("python -m asyncnet.demos.dns", __doc__)
    parser.add_argument("queries", nargs="*", metavar="NAME_OR_ADDRESS")
    parser.add_argument(
        "--timeout", type=cli.positive_float, default=2.0, help="seconds per lookup"
    )
    parser.add_argument(
        "--network",
        action="store_true",
        help="let the system resolver (and so DNS) answer loopback addresses and the FQDN",
    )
    parser.add_argument(
        "--hosts-file",
        metavar="PATH",
        type=cli.existing_file,
        help=f"where local answers come from (default {HOSTS_FILE})",
    )

    def body(args: argparse.Namespace) -> int:
        queries = args.queries or list(DEFAULT_QUERIES)
        return run(
            resolve(queries, args.timeout, allow_network=args.network, hosts_file=args.hosts_file)
        )

    return cli.main(parser, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
