"""asyncnet.dns and its demo, offline: no test reaches the system resolver.

The system resolver may forward anything the hosts file cannot answer to a DNS
server on the network (a reverse lookup of ::1, typically), and socket guards cannot
see that traffic.  So every test here runs with ``dns.HOSTS_FILE`` pointing at a
file written in tmp_path, and with the resolver entry points (``socket.getaddrinfo``,
``getnameinfo``, ``gethostbyaddr``, ``gethostbyname(_ex)``, ``getfqdn``) replaced by
functions that record the call and fail the test.  Tests about what is handed to the
resolver (``allow_network=True``, user-given names, timeouts) install a fake resolver
on the running loop instead.  Unknown names use the reserved ``.invalid`` TLD, which
asyncnet refuses without asking any resolver (RFC 6761).
"""

from __future__ import annotations

import ast
import asyncio
import ipaddress
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import asyncnet._runner
from asyncnet import dns
from asyncnet.demos import dns as demo
from asyncnet.errors import ConfigurationError, NetworkError, OperationTimeout

from .helpers import ROOT

HOST = socket.gethostname()

HOSTS = f"""\
# a hosts file as Debian writes it, with a comment and tabs
127.0.0.1\tlocalhost
127.0.1.1\t{HOST}.example.test {HOST}   # the host's own line
::1     ip6-localhost ip6-loopback
"""

RESOLVER_FUNCTIONS = (
    "getaddrinfo",
    "getnameinfo",
    "gethostbyaddr",
    "gethostbyname",
    "gethostbyname_ex",
    "getfqdn",
)


@pytest.fixture(autouse=True)
def resolver_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Harness: any call into the system resolver is recorded and fails the test."""
    calls: list[str] = []

    def refusing(name: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            calls.append(f"socket.{name}{args!r}")
            raise AssertionError(f"the system resolver was asked: socket.{name}{args!r}")

        return refuse

    for name in RESOLVER_FUNCTIONS:
        monkeypatch.setattr(socket, name, refusing(name))
    yield calls
    assert not calls, f"the system resolver was asked: {calls}"


@pytest.fixture(autouse=True)
def hosts_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The hosts file every lookup reads (HOSTS above) unless a test writes another."""
    path = tmp_path / "hosts"
    path.write_text(HOSTS)
    monkeypatch.setattr(dns, "HOSTS_FILE", str(path))
    return path


def write_hosts(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


class FakeResolver:
    """Stands in for the system resolver on the running loop; records every question."""

    def __init__(
        self,
        names: dict[str, str] | None = None,
        addresses: dict[str, list[str]] | None = None,
        *,
        hang: bool = False,
    ) -> None:
        self.names = names or {}
        self.addresses = addresses or {}
        self.hang = hang
        self.asked: list[object] = []

    async def getaddrinfo(self, host: str, port: object, **kwargs: Any) -> list[Any]:
        self.asked.append(host)
        if self.hang:
            await asyncio.get_running_loop().create_future()
        if host not in self.addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0))
            for a in self.addresses[host]
        ]

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
        self.asked.append((sockaddr, flags))
        if self.hang:
            await asyncio.get_running_loop().create_future()
        if sockaddr[0] not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.names[sockaddr[0]], "0"

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeResolver:
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(loop, "getaddrinfo", self.getaddrinfo)
        monkeypatch.setattr(loop, "getnameinfo", self.getnameinfo)
        return self


# The hosts-file parser: plain code, no I/O.


def test_hosts_parser_reads_comments_aliases_and_skips_junk() -> None:
    hosts = dns.Hosts.parse(
        "# comment line\r\n"
        "\r\n"
        "127.0.0.1 localhost loopback # trailing comment\r\n"
        "not-an-address somename\r\n"
        "192.0.2.1\r\n"
        "0:0:0:0:0:0:0:1\tip6-localhost\tip6-loopback\r\n"
        "127.0.0.1 second-line-for-the-same-address\r\n"
        "192.0.2.3 LocalHost\r\n"
    )
    assert [(str(e.address), e.names) for e in hosts.entries] == [
        ("127.0.0.1", ("localhost", "loopback")),
        ("::1", ("ip6-localhost", "ip6-loopback")),
        ("127.0.0.1", ("second-line-for-the-same-address",)),
        ("192.0.2.3", ("LocalHost",)),
    ]
    assert hosts.addresses("LOCALHOST.") == ["127.0.0.1", "192.0.2.3"]
    assert hosts.addresses("loopback") == ["127.0.0.1"]
    assert hosts.addresses("nowhere") == []
    assert hosts.names("127.0.0.1") == ("localhost", "loopback")  # the first line wins
    assert hosts.names("::1") == ("ip6-localhost", "ip6-loopback")
    assert hosts.names("::ffff:127.0.0.1") == ("localhost", "loopback")
    assert hosts.names("127.0.0.2") == ()


address_strategy = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))
name_strategy = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True)


@given(
    st.lists(st.tuples(address_strategy, st.lists(name_strategy, min_size=1, max_size=3))),
    st.sampled_from([" ", "\t", "  \t "]),
    st.booleans(),
)
def test_hosts_parser_reads_back_what_was_written(
    lines: list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, list[str]]],
    space: str,
    comments: bool,
) -> None:
    text = "".join(
        f"{address}{space}{space.join(names)}{' # note' if comments else ''}\n"
        for address, names in lines
    )
    parsed = dns.Hosts.parse(text)
    assert [(e.address, list(e.names)) for e in parsed.entries] == lines


def test_hosts_parser_is_plain_code() -> None:
    """The parser module imports nothing that does I/O: it can be tested with strings."""
    source = (ROOT / "asyncnet" / "dns" / "_hosts.py").read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    assert imported <= {"__future__", "dataclasses", "ipaddress", "typing"}, imported


def test_public_names_stay_those_of_asyncnet_dns() -> None:
    """The package keeps the public names the single module had."""
    assert sorted(dns.__all__) == sorted(
        [
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
    )
    for name in dns.__all__:
        assert getattr(dns, name) is not None, name


async def test_hosts_file_setting_is_read_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Assigning dns.HOSTS_FILE changes the next lookup (no copy taken at import)."""
    first = write_hosts(tmp_path / "first", "127.0.0.7 localhost\n")
    second = write_hosts(tmp_path / "second", "127.0.0.8 localhost\n")
    monkeypatch.setattr(dns, "HOSTS_FILE", str(first))
    assert await dns.forward("localhost", family=socket.AF_INET) == ["127.0.0.7"]
    assert dns.read_hosts().addresses("localhost") == ["127.0.0.7"]
    monkeypatch.setattr(dns, "HOSTS_FILE", second)  # a path-like object works too
    assert await dns.forward("localhost", family=socket.AF_INET) == ["127.0.0.8"]
    answer = await dns.lookup("127.0.0.9")
    assert answer.error is not None
    assert str(second) in str(answer.error)  # the error names the file it read


def test_missing_hosts_file_is_empty(tmp_path: Path) -> None:
    assert dns.read_hosts(tmp_path / "absent") == dns.Hosts()


def test_local_names_and_loopback_addresses() -> None:
    for name in ("localhost", "LocalHost.", "a.b.localhost", "x.LOCALHOST"):
        assert dns.is_local_name(name), name
    for name in ("localhost.example", "notlocalhost", "example.org", ""):
        assert not dns.is_local_name(name), name
    for address in ("127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"):
        assert dns.is_loopback_address(address), address
    for address in ("192.0.2.1", "::", "::2", "::ffff:192.0.2.1", "localhost"):
        assert not dns.is_loopback_address(address), address


# Forward lookups.


async def test_localhost_comes_from_the_hosts_file(hosts_file: Path) -> None:
    write_hosts(hosts_file, "127.0.0.5 LOCALHOST\n::1 localhost\n127.0.0.5 localhost\n")
    assert await dns.forward("localhost") == ["127.0.0.5", "::1"]
    assert await dns.forward("localhost", family=socket.AF_INET) == ["127.0.0.5"]
    assert await dns.forward("localhost", family=socket.AF_INET6) == ["::1"]


async def test_localhost_without_hosts_entries_is_rfc_6761_loopback(hosts_file: Path) -> None:
    write_hosts(hosts_file, "127.0.0.1 somethingelse\n")
    for name in ("localhost", "LocalHost.", "printer.localhost"):
        assert await dns.forward(name) == ["127.0.0.1", "::1"]
        assert await dns.forward(name, family=socket.AF_INET) == ["127.0.0.1"]
        assert await dns.forward(name, family=socket.AF_INET6) == ["::1"]
    missing = hosts_file.with_name("absent")
    assert await dns.forward("localhost", hosts_file=missing) == ["127.0.0.1", "::1"]


async def test_localhost_with_only_an_ipv4_entry_still_has_ipv6(hosts_file: Path) -> None:
    write_hosts(hosts_file, "127.0.0.1 localhost\n")
    assert await dns.forward("localhost") == ["127.0.0.1"]
    assert await dns.forward("localhost", family=socket.AF_INET6) == ["::1"]


async def test_localhost_stays_local_even_with_a_resolver_at_hand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RFC 6761: localhost names are not sent to DNS; a user name still is."""
    resolver = FakeResolver(addresses={"example.test": ["192.0.2.7"]}).install(monkeypatch)
    assert await dns.forward("localhost") == ["127.0.0.1"]
    assert resolver.asked == []
    assert await dns.forward("example.test") == ["192.0.2.7"]
    assert resolver.asked == ["example.test"]


async def test_forward_lookup_of_an_address_literal_is_the_address() -> None:
    assert await dns.forward("127.0.0.1") == ["127.0.0.1"]
    assert await dns.forward("0:0::1", family=socket.AF_INET6) == ["::1"]
    with pytest.raises(NetworkError, match=r"forward lookup of ::1 failed: not an IPv4 address"):
        await dns.forward("::1", family=socket.AF_INET)


async def test_invalid_tld_is_refused_without_a_query() -> None:
    for name in ("nosuch.invalid", "NoSuch.INVALID.", "invalid"):
        with pytest.raises(NetworkError) as info:
            await dns.forward(name)
        assert str(info.value) == (
            f"forward lookup of {name} failed: unknown name (.invalid never resolves, RFC 6761)"
        )
        assert (info.value.peer, info.value.phase) == (name, "forward lookup")


async def test_malformed_names_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match=r"forward lookup of 'a\.\.b': not a valid host"):
        await dns.forward("a..b")
    with pytest.raises(ConfigurationError, match="forward lookup needs a host name"):
        await dns.forward("")
    with pytest.raises(ConfigurationError, match="over 253 characters"):
        await dns.forward("a." * 127 + "b")
    with pytest.raises(ConfigurationError, match="family must be"):
        await dns.forward("localhost", family=socket.AF_UNIX)


# Reverse lookups.


async def test_reverse_lookup_of_loopback_comes_from_the_hosts_file() -> None:
    assert await dns.reverse("::1") == "ip6-localhost"
    assert await dns.reverse("127.0.0.1") == "localhost"
    assert await dns.reverse("::ffff:127.0.0.1") == "localhost"
    assert await dns.reverse("127.0.1.1") == f"{HOST}.example.test"


async def test_reverse_lookup_of_unlisted_loopback_is_a_clear_error(hosts_file: Path) -> None:
    write_hosts(hosts_file, "127.0.0.1 localhost\n")
    for address in ("::1", "127.0.0.2"):
        with pytest.raises(NetworkError) as info:
            await dns.reverse(address)
        assert str(info.value) == (
            f"reverse lookup of {address} failed: not in {hosts_file} "
            "(loopback addresses are not sent to DNS)"
        )
        assert (info.value.peer, info.value.phase) == (address, "reverse lookup")


async def test_unreadable_hosts_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        NetworkError, match=f"reverse lookup of ::1 failed: cannot read {re.escape(str(tmp_path))}"
    ):
        await dns.reverse("::1", hosts_file=tmp_path)  # a directory


async def test_allow_network_hands_loopback_to_the_resolver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver = FakeResolver(names={"::1": "resolver-name"}).install(monkeypatch)
    assert await dns.reverse("::1", allow_network=True) == "resolver-name"
    assert resolver.asked == [(("::1", 0, 0, 0), socket.NI_NAMEREQD)]


async def test_other_addresses_go_to_the_resolver_as_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver = FakeResolver(names={"192.0.2.1": "doc.example"}).install(monkeypatch)
    assert await dns.reverse("192.0.2.1") == "doc.example"
    with pytest.raises(
        NetworkError, match=r"reverse lookup of 192\.0\.2\.2 failed: Name or service"
    ):
        await dns.reverse("192.0.2.2")
    assert resolver.asked == [
        (("192.0.2.1", 0), socket.NI_NAMEREQD),
        (("192.0.2.2", 0), socket.NI_NAMEREQD),
    ]


async def test_reverse_lookup_needs_an_address() -> None:
    with pytest.raises(ConfigurationError, match="reverse lookup needs an IP address"):
        await dns.reverse("localhost")


# The FQDN.


async def test_fqdn_comes_from_the_hosts_file() -> None:
    """As socket.getfqdn: the first dotted name of the first line with the name's address."""
    assert await dns.fqdn() == f"{HOST}.example.test"
    assert await dns.fqdn(HOST.upper()) == f"{HOST}.example.test"
    assert await dns.fqdn("ip6-loopback") == "ip6-localhost"  # no dotted name: canonical one
    assert await dns.fqdn("127.0.0.1") == "localhost"
    answer = await dns.lookup_fqdn()
    assert (answer.query, answer.results, answer.note) == (HOST, (f"{HOST}.example.test",), "")


async def test_fqdn_of_an_unlisted_host_name_does_not_ask_dns(hosts_file: Path) -> None:
    write_hosts(hosts_file, "127.0.0.1 localhost\n")
    assert await dns.fqdn() == HOST
    assert await dns.fqdn("::") == HOST
    answer = await dns.lookup_fqdn()
    assert answer.ok
    assert answer.results == (HOST,)
    assert answer.note == f"not in {hosts_file}; DNS was not asked"
    assert answer.line() == f"{HOST}  -> {HOST}  (not in {hosts_file}; DNS was not asked)"


async def test_fqdn_with_allow_network_asks_socket_getfqdn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []

    def getfqdn(name: str = "") -> str:
        asked.append(name)
        return "from.the.resolver"

    monkeypatch.setattr(socket, "getfqdn", getfqdn)
    assert await dns.fqdn(allow_network=True) == "from.the.resolver"
    answer = await dns.lookup_fqdn("somehost", allow_network=True)
    assert (answer.query, answer.results, answer.note) == ("somehost", ("from.the.resolver",), "")
    assert asked == ["", "somehost"]


# The default queries, timeouts, lookup_all.


async def test_default_queries_never_reach_the_loop_resolver(
    monkeypatch: pytest.MonkeyPatch, hosts_file: Path
) -> None:
    """With a full hosts file or an empty one, the defaults are answered locally."""
    resolver = FakeResolver().install(monkeypatch)
    expected = {
        HOSTS: [("127.0.0.1",), ("localhost",), ("ip6-localhost",), (f"{HOST}.example.test",)],
        "": [("127.0.0.1", "::1"), NetworkError, NetworkError, (HOST,)],
    }
    for text, wanted in expected.items():
        write_hosts(hosts_file, text)
        answers = [*await dns.lookup_all(dns.DEFAULT_QUERIES), await dns.lookup_fqdn()]
        assert [a.query for a in answers] == [*dns.DEFAULT_QUERIES, HOST]
        assert [a.results or type(a.error) for a in answers] == wanted
    assert resolver.asked == []


async def test_local_answers_need_no_time() -> None:
    assert await dns.forward("localhost", timeout=0) == ["127.0.0.1"]
    assert await dns.reverse("::1", timeout=0) == "ip6-localhost"
    assert await dns.fqdn(timeout=0) == f"{HOST}.example.test"


async def test_timeouts_name_the_query_and_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeResolver(hang=True).install(monkeypatch)
    with pytest.raises(OperationTimeout) as info:
        await dns.forward("example.test", timeout=0)
    assert str(info.value) == "timed out after 0 s during forward lookup with example.test"
    with pytest.raises(OperationTimeout, match=r"during reverse lookup with 192\.0\.2\.1"):
        await dns.reverse("192.0.2.1", timeout=0)
    with pytest.raises(OperationTimeout, match=r"during reverse lookup with ::1"):
        await dns.reverse("::1", timeout=0, allow_network=True)


async def test_fqdn_timeout_abandons_a_hung_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    monkeypatch.setattr(socket, "getfqdn", lambda name="": release.wait(10) and "late")
    try:
        with pytest.raises(OperationTimeout, match=f"after 0.05 s during FQDN lookup with {HOST}"):
            await dns.fqdn(timeout=0.05, allow_network=True)
        answer = await dns.lookup_fqdn("x.example", timeout=0.05, allow_network=True)
        assert isinstance(answer.error, OperationTimeout)
    finally:
        release.set()
        for thread in threading.enumerate():
            if thread.name == "asyncnet-dns":
                thread.join(10)


async def test_lookup_all_keeps_order_and_isolates_failures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeResolver(addresses={"known.example": ["192.0.2.9"]}).install(monkeypatch)
    queries = ["localhost", "nosuch.invalid", "127.0.0.1", "a..b", "::1", "gone.example"]
    answers = await dns.lookup_all([*queries, "known.example"])
    assert [a.query for a in answers] == [*queries, "known.example"]
    assert [a.kind for a in answers] == [
        "forward lookup",
        "forward lookup",
        "reverse lookup",
        "forward lookup",
        "reverse lookup",
        "forward lookup",
        "forward lookup",
    ]
    assert [a.line(14) for a in answers] == [
        "localhost       -> 127.0.0.1",
        "nosuch.invalid  error: forward lookup of nosuch.invalid failed: unknown name "
        "(.invalid never resolves, RFC 6761)",
        "127.0.0.1       -> localhost",
        "a..b            error: forward lookup of 'a..b': not a valid host name (empty label)",
        "::1             -> ip6-localhost",
        "gone.example    error: forward lookup of gone.example failed: Name or service not known",
        "known.example   -> 192.0.2.9",
    ]


async def test_every_lookup_times_out_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeResolver(hang=True).install(monkeypatch)
    answers = await dns.lookup_all(["example.test", "localhost", "192.0.2.1", "::1"], timeout=0)
    assert [type(a.error) for a in answers] == [
        OperationTimeout,
        type(None),
        OperationTimeout,
        type(None),
    ]
    assert (
        answers[0].line()
        == "example.test  error: timed out after 0 s during forward lookup with example.test"
    )


# The demo: in-process on loops whose resolver fails the test, then as a real process.


class RefusingLoop(asyncio.SelectorEventLoop):
    """The stdlib loop with its resolver methods refusing (the demo must not ask)."""

    asked: list[object] = []

    async def getaddrinfo(self, *args: Any, **kwargs: Any) -> Any:
        RefusingLoop.asked.append(("getaddrinfo", args))
        raise AssertionError(f"loop.getaddrinfo{args!r}")

    async def getnameinfo(self, *args: Any, **kwargs: Any) -> Any:
        RefusingLoop.asked.append(("getnameinfo", args))
        raise AssertionError(f"loop.getnameinfo{args!r}")


def refusing_loops() -> list[Any]:
    loops: list[Any] = [RefusingLoop]
    try:
        import uvloop
    except ImportError:
        return loops

    class RefusingUvloop(uvloop.Loop):  # type: ignore[misc]
        async def getaddrinfo(self, *args: Any, **kwargs: Any) -> Any:
            RefusingLoop.asked.append(("getaddrinfo", args))
            raise AssertionError(f"uvloop getaddrinfo{args!r}")

        async def getnameinfo(self, *args: Any, **kwargs: Any) -> Any:
            RefusingLoop.asked.append(("getnameinfo", args))
            raise AssertionError(f"uvloop getnameinfo{args!r}")

    return [*loops, RefusingUvloop]


@pytest.mark.parametrize("loop_class", refusing_loops(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("listed", [True, False], ids=["listed", "unlisted"])
def test_demo_default_run_asks_no_resolver(
    loop_class: Any,
    listed: bool,
    hosts_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """main() with no arguments, on a loop (stdlib or uvloop) whose resolver refuses."""
    RefusingLoop.asked = []
    monkeypatch.setattr(asyncnet._runner, "loop_factory", lambda use_uvloop=None: loop_class)
    if not listed:
        write_hosts(hosts_file, "")
    status = demo.main([])
    out = capsys.readouterr().out.splitlines()
    assert RefusingLoop.asked == []
    if listed:
        assert status == 0
        assert out == [
            f"host name: {HOST}",
            f"FQDN:      {HOST}.example.test",
            "localhost  -> 127.0.0.1",
            "127.0.0.1  -> localhost",
            "::1        -> ip6-localhost",
        ]
    else:
        assert status == 1
        assert out == [
            f"host name: {HOST}",
            f"FQDN:      {HOST} (not in {hosts_file}; DNS was not asked)",
            "localhost  -> 127.0.0.1, ::1",
            f"127.0.0.1  error: reverse lookup of 127.0.0.1 failed: not in {hosts_file} "
            "(loopback addresses are not sent to DNS)",
            f"::1        error: reverse lookup of ::1 failed: not in {hosts_file} "
            "(loopback addresses are not sent to DNS)",
        ]


def test_demo_network_flag_hands_loopback_and_fqdn_to_the_resolver(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class AnsweringLoop(asyncio.SelectorEventLoop):
        async def getnameinfo(self, sockaddr: Any, flags: int = 0) -> tuple[str, str]:
            return f"resolved-{sockaddr[0].replace(':', '-')}", "0"

    monkeypatch.setattr(asyncnet._runner, "loop_factory", lambda use_uvloop=None: AnsweringLoop)
    monkeypatch.setattr(socket, "getfqdn", lambda name="": "fqdn.from.resolver")
    assert demo.main(["--network"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"host name: {HOST}",
        "FQDN:      fqdn.from.resolver",
        "localhost  -> 127.0.0.1",  # localhost names stay local even so (RFC 6761)
        "127.0.0.1  -> resolved-127.0.0.1",
        "::1        -> resolved---1",
    ]


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncnet.demos.dns", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )


def test_demo_process_answers_the_defaults_from_the_hosts_file(hosts_file: Path) -> None:
    done = run_demo("--hosts-file", str(hosts_file))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"host name: {HOST}",
        f"FQDN:      {HOST}.example.test",
        "localhost  -> 127.0.0.1",
        "127.0.0.1  -> localhost",
        "::1        -> ip6-localhost",
    ]
    assert done.stderr == ""


def test_demo_process_with_the_system_hosts_file() -> None:
    """The bare default run (no arguments): whatever /etc/hosts says, one line each."""
    done = run_demo()
    lines = done.stdout.splitlines()
    assert lines[0] == f"host name: {HOST}"
    assert re.fullmatch(r"FQDN:      \S+( \(not in \S+; DNS was not asked\))?", lines[1])
    assert re.fullmatch(r"localhost +-> .*(127\.0\.0\.1|::1).*", lines[2])
    assert re.fullmatch(r"127\.0\.0\.1 +(-> \S+|error: .* not sent to DNS\))", lines[3])
    assert re.fullmatch(r"::1 +(-> \S+|error: .* not sent to DNS\))", lines[4])
    assert len(lines) == 5
    assert done.returncode == (1 if any("error:" in line for line in lines[3:]) else 0)
    assert done.stderr == ""


def test_demo_prints_one_error_line_per_bad_name_and_the_rest(hosts_file: Path) -> None:
    done = run_demo(
        "nosuch.invalid", "Printer.localhost", "a..b", "127.0.0.1", "--hosts-file", str(hosts_file)
    )
    assert done.returncode == 1
    assert done.stdout.splitlines()[2:] == [
        "nosuch.invalid     error: forward lookup of nosuch.invalid failed: unknown name "
        "(.invalid never resolves, RFC 6761)",
        "Printer.localhost  -> 127.0.0.1, ::1",
        "a..b               error: forward lookup of 'a..b': not a valid host name (empty label)",
        "127.0.0.1          -> localhost",
    ]
    assert done.stderr == ""


def test_demo_help_explains_local_answers_and_network() -> None:
    done = run_demo("--help")
    assert done.returncode == 0
    assert "--network" in done.stdout
    assert "sends nothing to the" in done.stdout
    assert "RFC 6761" in done.stdout
