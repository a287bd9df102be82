"""The resolver policy: what is answered locally and what may leave the machine.

Every lookup of :mod:`asyncnet.dns` is decided here: ``localhost`` names and loopback
addresses are answered from the hosts file (read with :func:`read_hosts`, parsed by
:mod:`asyncnet.dns._hosts`), IP literals by themselves and ``.invalid`` names by a
refusal; anything else goes to the event loop's ``getaddrinfo``/``getnameinfo`` (or
``socket.getfqdn`` in a daemon thread) under a timeout, and every failure becomes one
line naming the query and the phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias, TypeVar

from .._boundary import network_errors
from .._loopback import is_loopback_address
from ..errors import AsyncNetError, ConfigurationError, NetworkError
from ._hosts import Hosts, IPAddress, fold_name

__all__ = [
    "DEFAULT_QUERIES",
    "DEFAULT_TIMEOUT",
    "RFC6761_LOOPBACK",
    "Answer",
    "HostsPath",
    "fqdn",
    "forward",
    "host_name",
    "is_local_name",
    "lookup",
    "lookup_all",
    "lookup_fqdn",
    "read_hosts",
    "reverse",
]

T = TypeVar("T")
HostsPath: TypeAlias = str | os.PathLike[str]
"""A hosts file's path, as a string or a path-like object."""

DEFAULT_QUERIES = ("localhost", "127.0.0.1", "::1")
"""What the demo resolves when given nothing: all answered locally, nothing is sent."""

DEFAULT_TIMEOUT = 2.0
"""Seconds a lookup may wait for the system resolver."""

RFC6761_LOOPBACK = ("127.0.0.1", "::1")
"""The answer for a localhost name the hosts file does not list (RFC 6761, section 6.3)."""

Kind = Literal["forward lookup", "reverse lookup", "FQDN lookup"]


@dataclass(frozen=True, slots=True)
class Answer:
    """The outcome of one lookup: the results, or the error that replaced them."""

    query: str
    kind: Kind
    results: tuple[str, ...] = ()
    """Addresses (forward lookup) or the one host name (reverse and FQDN lookups)."""
    error: AsyncNetError | None = None
    note: str = ""
    """Why a successful answer may not be what a resolver would say ("DNS was not asked")."""

    @property
    def ok(self) -> bool:
        """True when the lookup succeeded."""
        return self.error is None

    def line(self, width: int = 0) -> str:
        """One line for a terminal: ``query  -> results`` or ``query  error: ...``."""
        if self.error is not None:
            return f"{self.query:<{width}}  error: {self.error}"
        note = f"  ({self.note})" if self.note else ""
        return f"{self.query:<{width}}  -> {', '.join(self.results)}{note}"


def read_hosts(path: HostsPath | None = None) -> Hosts:
    """Read and parse the hosts file (default :data:`HOSTS_FILE`); missing means empty."""
    try:
        data = Path(path if path is not None else _default_hosts_file()).read_bytes()
    except FileNotFoundError:
        return Hosts()
    return Hosts.parse(data.decode("utf-8", errors="replace"))


def is_local_name(name: str) -> bool:
    """True for ``localhost`` and ``*.localhost``, which RFC 6761 keeps off DNS."""
    folded = fold_name(name)
    return folded == "localhost" or folded.endswith(".localhost")


def host_name() -> str:
    """This machine's host name (``socket.gethostname()``: local, no lookup)."""
    return socket.gethostname()


async def fqdn(
    name: str = "",
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    allow_network: bool = False,
    hosts_file: HostsPath | None = None,
) -> str:
    """The fully qualified name of ``name`` (default this host), like ``socket.getfqdn``.

    By default it comes from the hosts file: the names of the first line listing
    the name's first address there, the first with a dot in it, else the canonical
    one; a name the file does not know is returned unchanged, and DNS is not asked.
    ``allow_network=True`` runs ``socket.getfqdn(name)`` (which may ask DNS) in a
    daemon thread bounded by ``timeout``: unlike the loop's executor, a daemon thread
    never delays the program's exit if the resolver hangs.
    """
    query = _fqdn_query(name)
    if not allow_network:
        return _local_fqdn(query, hosts_file)[0]
    async with _errors(query, "FQDN lookup", timeout):
        return await _in_daemon_thread(socket.getfqdn, name)


async def forward(
    name: str,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    family: int = socket.AF_UNSPEC,
    hosts_file: HostsPath | None = None,
) -> list[str]:
    """The addresses ``name`` resolves to (``getaddrinfo``), without duplicates, in order.

    ``localhost`` and ``*.localhost`` are answered from the hosts file, else with
    RFC 6761's 127.0.0.1 and ::1 (for the ``family`` asked); an IP literal is its
    own answer.  Neither asks the system resolver.
    """
    phase = "forward lookup"
    if family not in (socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6):
        raise ConfigurationError(
            f"{phase} of {name}: family must be AF_UNSPEC, AF_INET or AF_INET6"
        )
    literal = _ip_or_none(name)
    if literal is not None:
        if not _in_family(literal, family):
            wanted = "IPv4" if family == socket.AF_INET else "IPv6"
            raise NetworkError(f"{phase} of {name} failed: not an {wanted} address", name, phase)
        return [str(literal)]
    _check_name(name, phase)
    if is_local_name(name):
        listed = _hosts(hosts_file, name, phase).addresses(name)
        found = [a for a in listed if _in_family(ipaddress.ip_address(a), family)]
        # RFC 6761 per family: a hosts file listing only 127.0.0.1 still gives ::1 for IPv6
        return found or [a for a in RFC6761_LOOPBACK if _in_family(ipaddress.ip_address(a), family)]
    loop = asyncio.get_running_loop()
    async with _errors(name, phase, timeout):
        infos = await loop.getaddrinfo(name, None, family=family, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def reverse(
    address: str,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    allow_network: bool = False,
    hosts_file: HostsPath | None = None,
) -> str:
    """The host name for the IP ``address`` (``getnameinfo`` with ``NI_NAMEREQD``).

    A loopback address is answered from the hosts file (its first name there) unless
    ``allow_network`` is true; when the file does not list it, the error says so and
    no resolver is asked.
    """
    phase = "reverse lookup"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError as exc:
        raise ConfigurationError(f"{phase} needs an IP address: {exc}") from None
    if not allow_network and is_loopback_address(ip):
        names = _hosts(hosts_file, address, phase).names(ip)
        if names:
            return names[0]
        raise NetworkError(
            f"{phase} of {address} failed: not in {_hosts_path(hosts_file)} "
            "(loopback addresses are not sent to DNS)",
            address,
            phase,
        )
    sockaddr: tuple[str, int] | tuple[str, int, int, int] = (
        (address, 0) if ip.version == 4 else (address, 0, 0, 0)
    )
    loop = asyncio.get_running_loop()
    async with _errors(address, phase, timeout):
        host, _port = await loop.getnameinfo(sockaddr, socket.NI_NAMEREQD)
    return host


async def lookup(
    query: str,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    allow_network: bool = False,
    hosts_file: HostsPath | None = None,
) -> Answer:
    """Reverse-look-up an IP address, forward-look-up anything else; never raises for it.

    A failure or a timeout is returned in :attr:`Answer.error`.
    """
    if _ip_or_none(query) is None:
        try:
            found = await forward(query, timeout=timeout, hosts_file=hosts_file)
        except AsyncNetError as exc:
            return Answer(query, "forward lookup", error=exc)
        return Answer(query, "forward lookup", tuple(found))
    try:
        name = await reverse(
            query, timeout=timeout, allow_network=allow_network, hosts_file=hosts_file
        )
    except AsyncNetError as exc:
        return Answer(query, "reverse lookup", error=exc)
    return Answer(query, "reverse lookup", (name,))


async def lookup_fqdn(
    name: str = "",
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    allow_network: bool = False,
    hosts_file: HostsPath | None = None,
) -> Answer:
    """:func:`fqdn` as an :class:`Answer` (for ``name``, default this host); never raises.

    When the hosts file does not know the name, the answer is the name itself with a
    :attr:`Answer.note` saying that DNS was not asked.
    """
    query = _fqdn_query(name)
    try:
        if not allow_network:
            full, note = _local_fqdn(query, hosts_file)
            return Answer(query, "FQDN lookup", (full,), note=note)
        full = await fqdn(name, timeout=timeout, allow_network=True)
    except AsyncNetError as exc:
        return Answer(query, "FQDN lookup", error=exc)
    return Answer(query, "FQDN lookup", (full,))


async def lookup_all(
    queries: Iterable[str],
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    allow_network: bool = False,
    hosts_file: HostsPath | None = None,
) -> list[Answer]:
    """:func:`lookup` every query concurrently; the answers come back in query order."""
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(
                lookup(q, timeout=timeout, allow_network=allow_network, hosts_file=hosts_file)
            )
            for q in queries
        ]
    return [task.result() for task in tasks]


def _default_hosts_file() -> HostsPath:
    # Read at call time, so that assigning asyncnet.dns.HOSTS_FILE (a test pointing
    # lookups at a file of its own) changes every lookup made after it.
    from . import HOSTS_FILE

    return HOSTS_FILE


def _ip_or_none(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _in_family(ip: IPAddress, family: int) -> bool:
    return family == socket.AF_UNSPEC or family == (
        socket.AF_INET if ip.version == 4 else socket.AF_INET6
    )


def _check_name(name: str, phase: str) -> None:
    """Refuse, before any resolver sees it, a name that cannot be in DNS."""
    if not name:
        raise ConfigurationError(f"{phase} needs a host name")
    if "" in name.removesuffix(".").split("."):
        raise ConfigurationError(f"{phase} of {name!r}: not a valid host name (empty label)")
    if len(name.removesuffix(".")) > 253:
        raise ConfigurationError(
            f"{phase} of {name[:20]!r}...: not a valid host name (over 253 characters)"
        )
    if fold_name(name).rsplit(".", 1)[-1] == "invalid":
        raise NetworkError(
            f"{phase} of {name} failed: unknown name (.invalid never resolves, RFC 6761)",
            name,
            phase,
        )


def _hosts_path(hosts_file: HostsPath | None) -> str:
    return os.fspath(hosts_file if hosts_file is not None else _default_hosts_file())


def _hosts(hosts_file: HostsPath | None, query: str, phase: str) -> Hosts:
    """The hosts file, or a one-line error naming the query, the phase and the file."""
    try:
        return read_hosts(hosts_file)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise NetworkError(
            f"{phase} of {query} failed: cannot read {_hosts_path(hosts_file)}: {reason}",
            query,
            phase,
        ) from exc


def _fqdn_query(name: str) -> str:
    name = name.strip()
    try:  # as socket.getfqdn does: no name, or the unspecified address, means this host
        unspecified = not name or ipaddress.ip_address(name).is_unspecified
    except ValueError:
        unspecified = False
    return host_name() if unspecified else name


def _local_fqdn(query: str, hosts_file: HostsPath | None) -> tuple[str, str]:
    """``socket.getfqdn(query)`` from the hosts file alone: (name, note)."""
    hosts = _hosts(hosts_file, query, "FQDN lookup")
    ip = _ip_or_none(query)
    if ip is None:
        addresses = hosts.addresses(query)
        ip = ipaddress.ip_address(addresses[0]) if addresses else None
    names = hosts.names(ip) if ip is not None else ()
    if not names:
        return query, f"not in {_hosts_path(hosts_file)}; DNS was not asked"
    return next((n for n in names if "." in n), names[0]), ""


@contextlib.asynccontextmanager
async def _errors(query: str, phase: str, timeout: float | None) -> AsyncIterator[None]:
    """Bound a lookup by ``timeout``; turn resolver failures into one-line asyncnet errors."""
    try:
        async with network_errors(query, phase, timeout, subject=f"{phase} of {query}"):
            yield
    except UnicodeError as exc:  # IDNA: an empty or over-long label, before any query
        raise ConfigurationError(f"{phase} of {query!r}: not a valid host name ({exc})") from None


async def _in_daemon_thread(func: Callable[..., T], *args: object) -> T:
    """Run a blocking call in a daemon thread; an abandoned call never blocks exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return  # the caller gave up (timeout): nobody wants the answer
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result, error = func(*args), None
        except Exception as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="asyncnet-dns", daemon=True).start()
    return await future
