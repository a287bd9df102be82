"""Name lookups without blocking the loop, each bounded by a timeout; local ones stay local.

The tutorial's ``gethostname()``, ``getfqdn()`` and ``gethostbyaddr()`` block the
whole program until the resolver answers, which can take a long time when a DNS
server is unreachable.  Here:

* :func:`forward` (name -> addresses) and :func:`reverse` (address -> name) use the
  event loop's ``getaddrinfo`` / ``getnameinfo`` under ``asyncio.timeout``;
* :func:`fqdn` runs ``socket.getfqdn()`` in a daemon thread, since it has no
  asynchronous form;
* :func:`lookup_all` runs several lookups concurrently (a ``TaskGroup``) and
  returns one :class:`Answer` per query, in order: a name that fails or times out
  gives an answer carrying the error, and the others are unaffected.

**Local questions are answered locally.**  The system resolver may send any
question it cannot answer from the hosts file to a DNS server on the network (a
reverse lookup of ``::1`` is the classic case), so asyncnet never hands it these:

* ``localhost`` and ``*.localhost`` (any case): the hosts file's addresses for the
  name, else 127.0.0.1 and ::1, as RFC 6761 section 6.3 asks -- always, even with
  ``allow_network=True``;
* reverse lookups of loopback addresses (127.0.0.0/8, ::1, ::ffff:127.x.y.z): the
  hosts file's canonical name, else an error saying DNS was not asked;
* the FQDN (:func:`fqdn`, :func:`lookup_fqdn`): computed from the hosts file as
  ``socket.getfqdn()`` would; a name the file does not know is returned unchanged.

``allow_network=True`` hands the last two to the system resolver as the tutorial's
calls did.  The hosts file is :data:`HOSTS_FILE` unless a call passes
``hosts_file=``; a missing file counts as empty, as for the C library.  Other names
and addresses always go to the system resolver: asking about them is the caller's
explicit request.  IP literals are answered without asking anyone.

Errors name the query and the phase: :class:`~asyncnet.errors.NetworkError`
("forward lookup of nosuch.invalid failed: ...") or
:class:`~asyncnet.errors.OperationTimeout` ("timed out after 2 s during reverse
lookup with 192.0.2.1").  Names under the reserved ``.invalid`` top-level domain are
refused at once without asking any resolver (RFC 6761, section 6.4).  Local answers
are immediate, so the timeout only bounds what the system resolver is asked.

A lookup that times out is abandoned, not stopped: the resolver call keeps its
thread until the system resolver gives up by itself (on the stdlib loop the default
executor's thread; ``asyncio.run`` waits for it at exit).

Two parts, one job each: the hosts-file parser (:class:`Hosts`, plain code with no
I/O, in :mod:`asyncnet.dns._hosts`) and the resolver policy, what is answered
locally and what may leave the machine (the lookups, in :mod:`asyncnet.dns._resolver`).
"""

from __future__ import annotations

import os

from .._loopback import is_loopback_address
from ._hosts import Hosts, HostsEntry
from ._resolver import (
    DEFAULT_QUERIES,
    RFC6761_LOOPBACK,
    Answer,
    HostsPath,
    forward,
    fqdn,
    host_name,
    is_local_name,
    lookup,
    lookup_all,
    lookup_fqdn,
    read_hosts,
    reverse,
)

__all__ = [
    "DEFAULT_QUERIES",
    "HOSTS_FILE",
    "RFC6761_LOOPBACK",
    "Answer",
    "Hosts",
    "HostsEntry",
    "HostsPath",
    "fqdn",
    "forward",
    "host_name",
    "is_local_name",
    "is_loopback_address",
    "lookup",
    "lookup_all",
    "lookup_fqdn",
    "read_hosts",
    "reverse",
]

HOSTS_FILE: HostsPath = (
    os.path.join(os.environ.get("SYSTEMROOT", r"C:\Windows"), "System32", "drivers", "etc", "hosts")
    if os.name == "nt"
    else "/etc/hosts"
)
"""The hosts file local answers come from, when a call passes no ``hosts_file``.

Read at call time: assign to change it for every later lookup.
"""
