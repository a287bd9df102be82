"""Typed server options (issue 9 item 3): mypy catches bad ones, construction refuses bad values."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from asyncnet import (
    ConfigurationError,
    DatagramServer,
    StreamServer,
    tcp_server,
    udp_server,
    unix_server,
)

from .helpers import ROOT, Echo, Upper

USER_FILE = """\
from asyncnet import DatagramHandler, LineHandler, tcp_server, udp_server, unix_server


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
    lines = [line for line in out.splitlines() if ": error:" in line]
    assert len(lines) == 3, out
    assert 'app.py:15: error: Unexpected keyword argument "prot" for "tcp_server"' in out
    assert 'app.py:16: error: Argument "port" to "udp_server" has incompatible type "str"' in out
    assert 'app.py:17: error: Unexpected keyword argument "host" for "unix_server"' in out


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


def test_the_factories_mirror_the_server_options() -> None:
    """Every StreamServer/DatagramServer option is a parameter of its factory (none forgotten)."""
    import inspect

    stream = set(inspect.signature(StreamServer).parameters) - {"handler"}
    assert set(inspect.signature(tcp_server).parameters) - {"handler"} == stream - {"path"}
    datagram = set(inspect.signature(DatagramServer).parameters) - {"handler"}
    assert set(inspect.signature(udp_server).parameters) - {"handler"} == datagram
    unix = set(inspect.signature(unix_server).parameters) - {"handler"}
    assert unix == stream - {
        "host",
        "port",
        "all_interfaces",
        "family",
        "reuse_address",
        "reuse_port",
        "sock",  # an inherited socket (TCP or Unix) goes through tcp_server(sock=...)
    }


@pytest.mark.parametrize("host", ["0", "0.0", "0.0.0", "0x0", "0.0.0.0", "::", "[::]", ""])
def test_short_forms_of_the_wildcard_need_all_interfaces(host: str) -> None:
    """inet_aton's short forms ("0", "0.0") bind every interface too: refused without the flag."""
    with pytest.raises(ConfigurationError, match="every interface"):
        tcp_server(Upper, host=host)
