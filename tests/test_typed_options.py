"""Typed server options: each declared once (name, type, default, docstring), mypy
catches a misspelt or mistyped one, construction refuses bad values."""

from __future__ import annotations

import ast
import inspect
import os
import re
import socket
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict, Union, get_args, get_origin, get_type_hints

import pytest

from asyncnet import (
    ConfigurationError,
    DatagramServer,
    StreamServer,
    tcp_server,
    udp_server,
    unix_server,
)
from asyncnet._options import Default, defaults_of
from asyncnet.servers import DatagramOptions, ListenOptions, StreamOptions, TCPOptions
from asyncnet.servers import _options as server_options

from .helpers import ROOT, Echo, Upper

USER_FILE = """\
from typing import Unpack

from asyncnet import DatagramHandler, DatagramServer, LineHandler, StreamServer
from asyncnet import tcp_server, udp_server, unix_server
from asyncnet.servers import TCPOptions


class Upper(LineHandler):
    async def handle_line(self, line: str) -> str:
        return line.upper()


class Echo(DatagramHandler):
    async def handle(self, data: bytes, addr: object) -> bytes:
        return data


good = tcp_server(Upper, port=9999, idle_timeout=30.0)
misspelt = tcp_server(Upper, prot=9999)
wrong_type = udp_server(Echo, port="9999")
no_host_for_unix = unix_server(Upper, "/tmp/x.sock", host="127.0.0.1")
server_misspelt = StreamServer(Upper, idle_timout=5)
datagram_mistyped = DatagramServer(Echo, max_pending=None)


def my_server(**options: Unpack[TCPOptions]) -> StreamServer:
    return tcp_server(Upper, **options)


forwarded = my_server(port=0, line_timeout=None)
forwarded_misspelt = my_server(max_conections=3)
"""


def test_mypy_catches_a_misspelt_or_mistyped_option_in_a_user_file(tmp_path: Path) -> None:
    """The user's file lives outside the repo; MYPYPATH stands in for an installed wheel.

    (An editable install's import hook is invisible to mypy: a separate issue.)
    """
    pytest.importorskip("mypy")
    (tmp_path / "app.py").write_text(USER_FILE)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "app.py"],
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=50,
    )
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 6, out
    expected = {
        "misspelt =": 'Unexpected keyword argument "prot" for "tcp_server"',
        "wrong_type =": 'Argument "port" to "udp_server" has incompatible type "str"',
        "no_host_for_unix =": 'Unexpected keyword argument "host" for "unix_server"',
        "server_misspelt =": 'Unexpected keyword argument "idle_timout" for "StreamServer"',
        "datagram_mistyped =": (
            'Argument "max_pending" to "DatagramServer" has incompatible type "None"'
        ),
        # A user's own wrapper forwards the options, still checked at its call sites.
        "forwarded_misspelt =": 'Unexpected keyword argument "max_conections" for "my_server"',
    }
    for statement, error in expected.items():
        assert f"app.py:{line_of(statement)}: error: {error}" in out, out


def line_of(statement: str) -> int:
    """The line of ``USER_FILE`` that starts with ``statement``."""
    (number,) = (
        n for n, line in enumerate(USER_FILE.splitlines(), 1) if line.startswith(statement)
    )
    return number


BAD_STREAM: list[tuple[dict[str, Any], str]] = [
    ({"port": "9999"}, "port"),
    ({"port": 70000}, "port"),
    ({"port": -1}, "port"),
    ({"port": True}, "port"),
    ({"idle_timeout": 0}, "idle_timeout"),
    ({"line_timeout": -1.0}, "line_timeout"),
    ({"write_timeout": "5"}, "write_timeout"),
    ({"write_timeout": float("nan")}, "write_timeout"),
    ({"ssl_handshake_timeout": 0}, "ssl_handshake_timeout"),
    ({"max_connections": 0}, "max_connections"),
    ({"backlog": -1}, "backlog"),
    ({"write_buffer_high": 0}, "write_buffer_high"),
    ({"busy_message": "busy"}, "busy_message"),
    ({"grace": -1}, "grace"),
    ({"family": socket.AF_UNIX}, "family"),
    ({"host": 127}, "host"),
    ({"ssl": True}, "ssl"),
]


@pytest.mark.parametrize(("options", "option"), BAD_STREAM, ids=lambda v: str(v))
def test_stream_server_refuses_bad_values_naming_the_option(
    options: dict[str, Any], option: str
) -> None:
    with pytest.raises(ConfigurationError, match=rf"\b{option}\b"):
        tcp_server(Upper, **options)
    with pytest.raises(ConfigurationError, match=rf"\b{option}\b"):
        StreamServer(Upper, **options)


BAD_DATAGRAM: list[tuple[dict[str, Any], str]] = [
    ({"port": "9999"}, "port"),
    ({"port": 65536}, "port"),
    ({"max_pending": 0}, "max_pending"),
    ({"receive_buffer": 0}, "receive_buffer"),
    ({"grace": "1"}, "grace"),
    ({"family": socket.AF_UNIX}, "family"),
]


@pytest.mark.parametrize(("options", "option"), BAD_DATAGRAM, ids=lambda v: str(v))
def test_datagram_server_refuses_bad_values_naming_the_option(
    options: dict[str, Any], option: str
) -> None:
    with pytest.raises(ConfigurationError, match=rf"\b{option}\b"):
        udp_server(Echo, **options)
    with pytest.raises(ConfigurationError, match=rf"\b{option}\b"):
        DatagramServer(Echo, **options)


def test_unix_server_refuses_a_non_str_path() -> None:
    with pytest.raises(ConfigurationError, match="path"):
        unix_server(Upper, 5)  # type: ignore[arg-type]


def test_good_values_pass_through_to_the_server() -> None:
    server = tcp_server(Upper, port=65535, idle_timeout=0.5, max_connections=3, grace=0)
    assert (server.port, server.idle_timeout, server.max_connections, server.grace) == (
        65535,
        0.5,
        3,
        0,
    )
    assert udp_server(Echo, port=0, receive_buffer=4096).receive_buffer == 4096


OPTIONS: list[Any] = [ListenOptions, StreamOptions, TCPOptions, DatagramOptions]


def test_the_factories_take_exactly_the_declared_options() -> None:
    """A TCP server takes the listening and stream options, a Unix one the stream
    options only, a UDP one the listening and datagram options: each declared once."""
    listen, stream = ListenOptions.__optional_keys__, StreamOptions.__optional_keys__
    assert TCPOptions.__optional_keys__ == listen | stream | {"reuse_address", "sock"}
    assert listen < DatagramOptions.__optional_keys__
    assert not listen & stream
    for declared in OPTIONS:
        assert set(defaults_of(declared)) == declared.__optional_keys__
        assert not declared.__required_keys__


UNKNOWN: list[tuple[str, Callable[..., object], dict[str, Any]]] = [
    ("tcp_server", lambda **o: tcp_server(Upper, **o), {"prot": 9999}),
    ("tcp_server", lambda **o: tcp_server(Upper, **o), {"path": "/tmp/x.sock"}),
    ("unix_server", lambda **o: unix_server(Upper, "/tmp/x.sock", **o), {"host": "::1"}),
    ("unix_server", lambda **o: unix_server(Upper, "/tmp/x.sock", **o), {"sock": None}),
    ("udp_server", lambda **o: udp_server(Echo, **o), {"idle_timeout": 5}),
    ("StreamServer", lambda **o: StreamServer(Upper, **o), {"max_pending": 5}),
    ("DatagramServer", lambda **o: DatagramServer(Echo, **o), {"backlog": 5}),
]


@pytest.mark.parametrize(
    ("callee", "build", "options"), UNKNOWN, ids=[f"{c}-{next(iter(o))}" for c, _, o in UNKNOWN]
)
def test_an_unknown_option_is_a_type_error_naming_the_callee(
    callee: str, build: Callable[..., object], options: dict[str, Any]
) -> None:
    """Python's own message for a misspelt keyword, for code no type checker has read."""
    (name,) = options
    message = rf"^{callee}\(\) got an unexpected keyword argument '{name}'$"
    with pytest.raises(TypeError, match=message):
        build(**options)


# Options a server keeps under another name (``_host``, ``proxy``), or not at all.
NOT_KEPT_AS_IS = {"host", "all_interfaces", "proxy_protocol", "proxy_trusted"}
NOT_KEPT_AS_IS |= {"proxy_header_timeout", "drop_sources"}


def test_a_server_given_no_options_has_the_declared_defaults(tmp_path: Path) -> None:
    """The defaults are written only in the declarations."""
    stream = {**defaults_of(TCPOptions), "name": "Upper"}  # name None: the handler's
    path = str(tmp_path / "x.sock")
    for server in (tcp_server(Upper), StreamServer(Upper), unix_server(Upper, path)):
        for key in stream.keys() - NOT_KEPT_AS_IS:
            if server.path is None or key in StreamOptions.__optional_keys__:
                assert getattr(server, key) == stream[key], key
        assert server.proxy is None
    datagram = {**defaults_of(DatagramOptions), "name": "Echo"}
    for udp in (udp_server(Echo), DatagramServer(Echo)):
        for key in datagram.keys() - NOT_KEPT_AS_IS:
            assert getattr(udp, key) == datagram[key], key
        assert udp.drop_sources == datagram["drop_sources"]


def test_a_subclass_names_itself_for_an_unknown_option() -> None:
    class Mine(StreamServer):
        pass

    with pytest.raises(TypeError, match=r"^Mine\(\) got an unexpected keyword argument 'prot'$"):
        Mine(Upper, prot=1)  # type: ignore[call-arg]


def _accepts(hint: Any, value: object) -> bool:
    """Whether ``value`` is of type ``hint``, for the types options are declared with."""
    if hint is type(None):
        return value is None
    if get_origin(hint) in (Union, types.UnionType):
        return any(_accepts(arm, value) for arm in get_args(hint))
    if hint is float:  # as for a type checker, an int is a float
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, get_origin(hint) or hint)


@pytest.mark.parametrize("declared", OPTIONS, ids=lambda kind: kind.__name__)
def test_every_default_has_its_declared_type(declared: Any) -> None:
    """A type checker does not look inside ``Annotated``'s metadata: this does."""
    hints = get_type_hints(declared)
    for key, default in defaults_of(declared).items():
        assert _accepts(hints[key], default), (key, default, hints[key])


def test_an_option_declared_without_its_default_is_refused() -> None:
    class Careless(TypedDict, total=False):
        port: Annotated[int, Default(0)]
        host: str

    with pytest.raises(TypeError, match=r"Careless\.host needs exactly one Default"):
        defaults_of(Careless)


def test_every_option_has_its_docstring_in_its_declaration() -> None:
    """The options are documented where they are declared, and the API reference shows it."""
    tree = ast.parse(inspect.getsource(server_options))
    documented: set[str] = set()
    for kind in (node for node in tree.body if isinstance(node, ast.ClassDef)):
        for field, after in zip(kind.body, kind.body[1:], strict=False):
            if isinstance(field, ast.AnnAssign):
                assert isinstance(field.target, ast.Name)
                assert isinstance(after, ast.Expr), f"{kind.name}.{field.target.id}"
                assert isinstance(after.value, ast.Constant), f"{kind.name}.{field.target.id}"
                documented.add(field.target.id)
    assert documented == set().union(*(kind.__optional_keys__ for kind in OPTIONS))


def test_the_servers_page_lists_each_declared_option_once_with_its_default() -> None:
    """docs/servers.md has one row per declaration (``grace`` and ``name`` are declared
    for stream and for datagram servers), and a default written as a literal there is
    the declared one."""
    section = (ROOT / "docs" / "servers.md").read_text(encoding="utf-8")
    section = section.split("\n## Options\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (.+?) \|", section, re.MULTILINE)
    tcp_only = TCPOptions.__optional_keys__ - ListenOptions.__optional_keys__
    tcp_only -= StreamOptions.__optional_keys__
    datagram_only = DatagramOptions.__optional_keys__ - ListenOptions.__optional_keys__
    declared = [ListenOptions.__optional_keys__, StreamOptions.__optional_keys__]
    declared += [tcp_only, datagram_only]
    assert sorted(name for name, _ in rows) == sorted(name for keys in declared for name in keys)
    kinds = [defaults_of(TCPOptions), defaults_of(DatagramOptions)]
    literals = 0
    for name, cell in rows:
        try:
            written = ast.literal_eval(cell.strip("`"))
        except (ValueError, SyntaxError):
            continue  # prose: "the OS default", "64 KiB"
        literals += 1
        assert any(kind.get(name, ...) == written for kind in kinds), (name, cell)
    assert literals > 15


@pytest.mark.parametrize("host", ["0", "0.0", "0.0.0", "0x0", "0.0.0.0", "::", "[::]", ""])
def test_short_forms_of_the_wildcard_need_all_interfaces(host: str) -> None:
    """inet_aton's short forms ("0", "0.0") bind every interface too: refused without the flag."""
    with pytest.raises(ConfigurationError, match="every interface"):
        tcp_server(Upper, host=host)
