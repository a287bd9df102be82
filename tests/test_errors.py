"""The error tree and the one boundary where OS errors become asyncnet errors."""

from __future__ import annotations

import asyncio
import errno
import importlib
import inspect
import pkgutil
import socket
import ssl
from pathlib import Path
from types import ModuleType

import pytest
from aiohttp import web

import asyncnet
import asyncnet.creosote
import asyncnet.errors
from asyncnet import (
    AddressInUse,
    AsyncNetError,
    BroadcastNotAllowed,
    ClientError,
    ConfigurationError,
    CreosoteError,
    DatagramClient,
    FrameTooLarge,
    LineClient,
    LineTooLong,
    LocalProtocolError,
    NetworkError,
    NoResponse,
    OperationTimeout,
    PeerProtocolError,
    ProtocolError,
    ServerError,
    StateError,
    run_workers,
    tcp_server,
    udp_server,
    unix_server,
)
from asyncnet.creosote import Bucket, WebView
from asyncnet.ftp import FTPClient, FTPConnectionClosed, FTPError
from asyncnet.mail import LocalMailServer, MailError, POP3Client, POP3ConnectionError
from asyncnet.protocols import LineBuffer, ProxyHeaderParser, encode_v1, encode_v2
from asyncnet.testing import NonLoopbackTraffic
from asyncnet.web import (
    Client,
    HTTPStatusError,
    ProxyError,
    Request,
    StaticFiles,
    WebConfigurationError,
    WebError,
    WebServer,
    crawl,
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


# -- one tree: a root per domain, the shared kinds for the rest -----------------------

# The packages that define errors of their own, and the root of each.  Servers, clients
# and creosote have a root too, defined in asyncnet.errors beside the shared kinds (each
# has one or two errors of its own); the sans-IO protocols raise the shared kinds.
DOMAIN_ROOTS: dict[str, type[AsyncNetError]] = {
    "asyncnet.mail": MailError,
    "asyncnet.ftp": FTPError,
    "asyncnet.web": WebError,
}
ROOTS_IN_ERRORS: dict[str, type[AsyncNetError]] = {
    "asyncnet.servers": ServerError,
    "asyncnet.clients": ClientError,
    "asyncnet.creosote": CreosoteError,
}
SHARED_KINDS = (ConfigurationError, StateError, ProtocolError, NetworkError, OperationTimeout)
# The test kit's guard is left out on purpose: code under test that catches
# AsyncNetError (or NetworkError) must not swallow the refusal of non-loopback traffic.
OUTSIDE_THE_TREE = {NonLoopbackTraffic}


def public_modules() -> list[ModuleType]:
    """Every public module of the package (no ``_`` in its dotted name), demos aside."""
    names = ["asyncnet"] + [
        info.name
        for info in pkgutil.walk_packages(asyncnet.__path__, "asyncnet.")
        if not any(part.startswith("_") for part in info.name.split("."))
        and not info.name.startswith("asyncnet.demos")
    ]
    return [importlib.import_module(name) for name in names]


def exported_exceptions() -> dict[type[BaseException], list[str]]:
    """{exception class: the public modules whose ``__all__`` exports it}."""
    found: dict[type[BaseException], list[str]] = {}
    for module in public_modules():
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                found.setdefault(obj, []).append(module.__name__)
    return found


def domain_root(cls: type) -> type[AsyncNetError] | None:
    """The root of the domain package that defines ``cls`` (None: a shared kind)."""
    package = ".".join(cls.__module__.split(".")[:2])
    return DOMAIN_ROOTS.get(package)


def test_every_exported_exception_sits_under_its_domain_root_and_asyncnet_error() -> None:
    """A new exception class outside the tree fails here: it must derive from
    AsyncNetError and, in the mail, FTP and web packages, from that package's root;
    anywhere else it must be one of the shared kinds."""
    found = exported_exceptions()
    assert len(found) > 40, sorted(cls.__name__ for cls in found)  # the walk saw them all
    for cls, modules in found.items():
        where = f"{cls.__name__} (exported by {', '.join(modules)})"
        if cls in OUTSIDE_THE_TREE:
            assert not issubclass(cls, AsyncNetError), where
            continue
        assert issubclass(cls, AsyncNetError), f"{where} is not an AsyncNetError"
        root = domain_root(cls)
        if root is not None:
            assert issubclass(cls, root), f"{where} is not a {root.__name__}"
        else:
            roots = tuple(ROOTS_IN_ERRORS.values())
            assert cls is AsyncNetError or cls in roots or issubclass(cls, SHARED_KINDS), (
                f"{where}: outside the mail, FTP and web packages an error is one of the "
                "shared kinds of asyncnet.errors"
            )


def test_each_domain_root_is_exported_by_its_package_right_under_asyncnet_error() -> None:
    for package, root in {**DOMAIN_ROOTS, **ROOTS_IN_ERRORS}.items():
        assert root.__bases__ == (AsyncNetError,), root
        assert getattr(importlib.import_module(package), root.__name__) is root
        assert root.__name__ in importlib.import_module(package).__all__


def test_domain_errors_keep_the_builtin_guarantees() -> None:
    """What goes wrong on a connection is an OSError, a timeout a TimeoutError, a bad
    option a ValueError, whatever domain raised it."""
    for cls in exported_exceptions():
        if issubclass(cls, NetworkError):
            assert issubclass(cls, OSError), cls
        if issubclass(cls, OperationTimeout):
            assert issubclass(cls, TimeoutError), cls
        if issubclass(cls, ConfigurationError | LocalProtocolError):
            assert issubclass(cls, ValueError), cls
        if issubclass(cls, StateError):
            assert issubclass(cls, RuntimeError), cls
    assert issubclass(FTPConnectionClosed, FTPError)
    assert issubclass(FTPConnectionClosed, NetworkError)
    assert issubclass(ProxyError, WebError)
    assert issubclass(ProxyError, OSError)


# -- HTTP status errors ---------------------------------------------------------------


@pytest.mark.timeout(20)
async def test_a_404_is_a_web_error_not_a_peer_protocol_error() -> None:
    """A 404 is a valid answer: HTTPStatusError is a WebError, and an
    `except PeerProtocolError` written for broken servers does not catch it."""
    routes = web.RouteTableDef()

    @routes.get("/missing")
    async def missing(request: web.Request) -> web.Response:
        raise web.HTTPNotFound(text="nope")

    app = web.Application()
    app.add_routes(routes)
    async with WebServer(app, port=0) as server, Client(timeout=5) as client:
        response = await client.fetch(server.url + "missing")
        with pytest.raises(WebError) as info:
            try:
                response.raise_for_status()
            except PeerProtocolError:  # pragma: no cover - the bug this test guards
                pytest.fail("a 404 was taken for a broken server")
    error = info.value
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.reason) == (404, "Not Found")
    assert not isinstance(error, (PeerProtocolError, OSError))


# -- misuse is a StateError, bad options a ConfigurationError -------------------------


async def test_web_client_used_before_start_is_a_state_error() -> None:
    client = Client()
    with pytest.raises(StateError, match="not started"):
        _ = client.session
    async with client:
        assert client.session is not None


def test_web_options_are_web_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(WebConfigurationError, match="max_ranges"):
        StaticFiles(tmp_path, max_ranges=0)
    with pytest.raises(WebConfigurationError, match="max_redirects"):
        Client(max_redirects=-1)
    with pytest.raises(WebConfigurationError, match="http:// or https://"):
        Request("ftp://127.0.0.1/")
    with pytest.raises(WebConfigurationError, match="proxy scheme"):
        Request("http://127.0.0.1/").set_proxy("127.0.0.1:1", scheme="socks5")


async def test_crawl_bounds_are_web_configuration_errors() -> None:
    with pytest.raises(WebConfigurationError, match="max_pages"):
        await crawl("http://127.0.0.1:9/", max_pages=0)
    with pytest.raises(WebConfigurationError, match="concurrency"):
        await crawl("http://127.0.0.1:9/", concurrency=0)


async def test_local_mail_server_used_before_start_is_a_state_error(tmp_path: Path) -> None:
    mail = LocalMailServer({"alice": "pw"}, root=tmp_path)
    for name in ("smtp_address", "pop3_address", "pop3"):
        with pytest.raises(StateError, match="not started"):
            getattr(mail, name)
    async with mail:
        assert mail.smtp_address[0] == "127.0.0.1"


async def test_ftp_streams_outside_their_block_are_state_errors() -> None:
    client = FTPClient("127.0.0.1", 9)  # never connected: the misuse is refused first
    with pytest.raises(StateError, match="open_read"):
        await client.open_read("file").read()
    with pytest.raises(StateError, match="open_write"):
        await client.open_write("file").write(b"x")


async def test_creosote_misuse_and_bad_options() -> None:
    with pytest.raises(ConfigurationError, match="max_queue"):
        Bucket(port=0, max_queue=0)
    async with Bucket(port=0, callback=lambda message: None) as bucket:
        with pytest.raises(StateError, match="subscribe"):
            aiter(bucket)
        view = WebView(bucket, port=0)
        with pytest.raises(StateError, match="not serving"):
            _ = view.address


def test_sans_io_misuse_and_bad_options() -> None:
    with pytest.raises(ConfigurationError, match="max_line_length"):
        LineBuffer(0)
    with pytest.raises(ConfigurationError, match="delimiter"):
        LineBuffer(delimiter=b"")
    buffer = LineBuffer()
    with pytest.raises(StateError, match="start_dot_body"):
        buffer.next_body()
    with pytest.raises(StateError, match="start_dot_body"):
        buffer.next_body_chunk()
    buffer.feed_eof()
    with pytest.raises(StateError, match="feed_eof"):
        buffer.feed(b"late")
    with pytest.raises(ConfigurationError, match=r"b'\\n' delimiter"):
        LineBuffer(delimiter=b"\r\n").start_dot_body()


def test_proxy_header_arguments_are_configuration_errors() -> None:
    v4, v6 = ("127.0.0.1", 1000), ("::1", 2000)
    with pytest.raises(ConfigurationError, match="both be IPv4 or both IPv6"):
        encode_v1(v4, v6)
    with pytest.raises(ConfigurationError, match="both be IPv4 or both IPv6"):
        encode_v2(v6, v4)
    with pytest.raises(ConfigurationError, match="source must be an IP address"):
        encode_v1(("localhost", 1), v4)
    with pytest.raises(ConfigurationError, match="destination port"):
        encode_v2(v4, ("127.0.0.1", 70000))
    with pytest.raises(ConfigurationError, match="'PROXY' or 'LOCAL'"):
        encode_v2(v4, v4, command="HEALTH")
    with pytest.raises(ConfigurationError, match="65535"):
        ProxyHeaderParser(max_v2_length=70000)
    assert encode_v2(v4, v4, command="LOCAL")[12] == 0x20  # valid input still encodes


async def test_run_workers_inside_a_loop_is_a_state_error() -> None:
    with pytest.raises(StateError, match="before any event loop runs"):
        run_workers(tcp_server(Upper), workers=2)


# -- end of input is an event of the POP3 parser, an error of the client -------------


@pytest.mark.timeout(20)
async def test_pop3_drop_mid_reply_is_the_client_s_connection_error() -> None:
    """P2: the sans-IO parser reports the end of input as an event; the client turns
    it into POP3ConnectionError (a MailError and a NetworkError) naming the reply."""

    async def cut_retr(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"+OK ready\r\n")
        await writer.drain()
        await reader.readline()  # RETR 1
        writer.write(b"+OK 100 octets\r\nSubject: half\r\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(cut_retr, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with POP3Client("127.0.0.1", port, timeout=5) as pop:
            with pytest.raises(POP3ConnectionError) as info:
                await pop.retr(1)
    finally:
        server.close()
        await server.wait_closed()
    error = info.value
    assert str(error) == "connection closed in the middle of the RETR reply"
    assert error.phase == "RETR"
    assert isinstance(error, MailError)
    assert isinstance(error, NetworkError)


@pytest.mark.parametrize(
    ("error", "root", "kind"),
    [
        (AddressInUse, ServerError, NetworkError),
        (NoResponse, ClientError, OperationTimeout),
        (BroadcastNotAllowed, CreosoteError, ConfigurationError),
    ],
)
def test_server_client_and_creosote_errors_sit_under_their_roots(
    error: type[AsyncNetError], root: type[AsyncNetError], kind: type[AsyncNetError]
) -> None:
    """The errors only one side raises are under that side's root and still their kind."""
    assert issubclass(error, root)
    assert issubclass(error, kind)
