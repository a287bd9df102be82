"""The error tree and the one boundary where OS errors become asyncnet errors."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl

import pytest

import asyncnet
import asyncnet.creosote
import asyncnet.errors
from asyncnet import (
    AddressInUse,
    ConfigurationError,
    DatagramClient,
    FrameTooLarge,
    LineClient,
    LineTooLong,
    LocalProtocolError,
    NetworkError,
    StateError,
    tcp_server,
    udp_server,
    unix_server,
)

from .helpers import Echo, Upper


def test_every_public_error_lives_in_errors_and_derives_from_the_root() -> None:
    for name in asyncnet.errors.__all__:
        obj = getattr(asyncnet.errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, asyncnet.AsyncNetError), name
            assert getattr(asyncnet, name) is obj, f"asyncnet.{name} is not re-exported"


def test_an_over_long_line_is_a_frame_too_large() -> None:
    """One family: except FrameTooLarge catches lines and frames alike."""
    error = LineTooLong(10, 12, ("127.0.0.1", 1))
    assert isinstance(error, FrameTooLarge)
    assert (error.size, error.received, error.limit) == (12, 12, 10)
    assert "line too long from 127.0.0.1:1" in str(error)


def test_broadcast_not_allowed_is_one_class_in_both_places() -> None:
    assert asyncnet.creosote.BroadcastNotAllowed is asyncnet.errors.BroadcastNotAllowed
    assert issubclass(asyncnet.errors.BroadcastNotAllowed, ConfigurationError)
    assert issubclass(asyncnet.errors.BroadcastNotAllowed, PermissionError)


async def test_busy_tcp_port_is_address_in_use_naming_host_and_port() -> None:
    """S8: a busy port fails fast as AddressInUse: an OSError keeping EADDRINUSE, one line."""
    async with tcp_server(Upper) as server:
        port = server.address[1]
        with pytest.raises(AddressInUse) as info:
            await tcp_server(Upper, port=port, reuse_address=False).start()
    error = info.value
    assert isinstance(error, NetworkError)
    assert isinstance(error, OSError)
    assert error.errno == errno.EADDRINUSE
    assert error.phase == "bind"
    assert f"127.0.0.1:{port}" in str(error)
    assert "already in use" in str(error)
    assert "\n" not in str(error)
    assert isinstance(error.__cause__, OSError)


async def test_busy_udp_port_is_address_in_use() -> None:
    async with udp_server(Echo) as server:
        port = server.address[1]
        with pytest.raises(AddressInUse, match=rf"udp 127\.0\.0\.1:{port}\b") as info:
            await udp_server(Echo, port=port).start()
    assert info.value.errno == errno.EADDRINUSE


async def test_unix_socket_in_a_missing_directory_is_a_network_error(tmp_path: object) -> None:
    path = f"{tmp_path}/no/such/dir/sock"
    with pytest.raises(NetworkError, match=r"unix .*sock: No such file") as info:
        await unix_server(Upper, path).start()
    assert info.value.errno == errno.ENOENT
    assert not isinstance(info.value, AddressInUse)


async def test_tls_failure_keeps_the_ssl_reason_not_an_errno_text() -> None:
    """An SSLError's errno is an OpenSSL code: its text must not become strerror()."""

    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.0 400 plain text, not TLS\r\n\r\n" * 4)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    context = ssl.create_default_context()
    try:
        async with asyncio.timeout(10):
            with pytest.raises(NetworkError) as info:
                await LineClient.connect("127.0.0.1", port, ssl=context, timeout=5)
    finally:
        server.close()
        await server.wait_closed()
    error = info.value
    assert isinstance(error.__cause__, ssl.SSLError)
    assert error.errno is None
    assert error.__cause__.reason is not None
    assert error.__cause__.reason in str(error)
    assert "Operation not permitted" not in str(error)  # strerror(1) of the OpenSSL code
    assert str(error).startswith(f"connect with 127.0.0.1:{port} failed: ")


async def test_refused_connect_is_a_network_error_with_the_errno() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connect is refused
        with pytest.raises(NetworkError, match="Connection refused") as info:
            await LineClient.connect("127.0.0.1", port, timeout=5)
    assert info.value.errno == errno.ECONNREFUSED


async def test_misuse_is_local_protocol_error_and_bad_options_configuration_error() -> None:
    async with tcp_server(Upper) as server:
        async with await LineClient.connect(*server.address, timeout=5) as client:
            with pytest.raises(LocalProtocolError, match="delimiter"):
                await client.send_line("two\nlines")
    with pytest.raises(ConfigurationError, match="port"):
        await LineClient.connect("127.0.0.1")
    with pytest.raises(ConfigurationError, match="timeout"):
        await DatagramClient.connect("127.0.0.1", 9, timeout=0)
    with pytest.raises(ConfigurationError, match="retries"):
        await DatagramClient.connect("127.0.0.1", 9, retries=-1)


async def test_resolver_errors_keep_the_resolver_text() -> None:
    """A gaierror's code is not an errno: the message keeps getaddrinfo's own words.

    (127.0.0.1 asked for as IPv6 fails inside getaddrinfo without any DNS query.)
    """
    with pytest.raises(NetworkError) as info:
        await udp_server(Echo, family=socket.AF_INET6).start()
    error = info.value
    assert isinstance(error.__cause__, socket.gaierror)
    assert error.errno is None
    assert str(error).endswith(f": {error.__cause__.strerror}")


async def test_wrong_state_is_a_state_error_and_still_a_runtime_error() -> None:
    server = tcp_server(Upper)
    with pytest.raises(StateError, match="not started"):
        _ = server.loop
    async with server:
        with pytest.raises(StateError, match="already started"):
            await server.start()
    assert issubclass(StateError, RuntimeError)


def test_a_handler_class_of_the_wrong_kind_is_refused_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="Echo is not a LineHandler or StreamHandler"):
        tcp_server(Echo)  # type: ignore[arg-type]
