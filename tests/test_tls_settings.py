"""Client TLS settings: ``--cafile`` adds to the system store, ``--cert/--key`` give an
identity, and each wrong file is one ConfigurationError naming its option."""

from __future__ import annotations

import argparse
import asyncio
import ssl
from pathlib import Path

import pytest
import trustme

from asyncnet._tls import client_context, resolve_ssl
from asyncnet.demos import _cli as cli
from asyncnet.errors import ConfigurationError

pytestmark = pytest.mark.timeout(20)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_cafile_is_added_to_the_system_store_not_instead_of_it(
    ca: trustme.CA, tmp_path: Path
) -> None:
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    system = ssl.create_default_context().cert_store_stats()["x509_ca"]
    context = client_context(cafile=cafile)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == system + 1


async def test_a_context_from_cafile_and_client_cert_completes_a_mutual_handshake(
    ca: trustme.CA, tmp_path: Path
) -> None:
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    client_cert = ca.issue_cert("client@localhost")
    certfile = tmp_path / "client.pem"
    client_cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(server_context)
    ca.configure_trust(server_context)
    server_context.verify_mode = ssl.CERT_REQUIRED
    seen: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.set_result(writer.get_extra_info("peercert"))
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0, ssl=server_context)
    async with server:
        port = server.sockets[0].getsockname()[1]
        context = client_context(cafile=cafile, certfile=certfile)
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        peercert = await asyncio.wait_for(seen, 10)
        writer.close()
    assert peercert, "the server saw no client certificate"


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"cafile": "missing.pem"}, "--cafile missing.pem: no such file"),
        ({"cafile": "garbage.pem"}, "--cafile garbage.pem: not a PEM CA certificate"),
        ({"certfile": "garbage.pem"}, "--cert garbage.pem"),
        ({"keyfile": "garbage.pem"}, "--key needs --cert"),
    ],
)
def test_each_wrong_file_is_one_error_naming_its_option(
    kwargs: dict[str, str], option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    with pytest.raises(ConfigurationError) as info:
        client_context(**kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(option)


def test_resolve_ssl_takes_one_documented_shape() -> None:
    assert resolve_ssl(False) is None
    assert isinstance(resolve_ssl(None), ssl.SSLContext)
    assert resolve_ssl(True).verify_mode is ssl.CERT_REQUIRED  # type: ignore[union-attr]
    mine = ssl.create_default_context()
    assert resolve_ssl(mine) is mine
    with pytest.raises(ConfigurationError, match="ssl must be"):
        resolve_ssl("yes")  # type: ignore[arg-type]


def test_demo_tls_arguments_build_the_context_only_when_asked(
    ca: trustme.CA, tmp_path: Path
) -> None:
    parser = argparse.ArgumentParser()
    cli.add_tls_arguments(parser)
    assert cli.tls_context(parser.parse_args([])) is None
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    context = cli.tls_context(parser.parse_args(["--cafile", str(cafile)]))
    assert isinstance(context, ssl.SSLContext)
