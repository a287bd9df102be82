"""Active mode on the embedded FTP server (PORT, EPRT), and who may use a data port.

The argument parsers are plain functions, tested without sockets (hypothesis feeds
them anything); the rest runs ftplib in active mode and raw control connections
against FTPServer on loopback.  The suite's loopback guard fails any test in which the
server tries to connect anywhere but 127.0.0.1 or ::1, so a bounce that got through
would fail safely instead of sending packets.
"""

from __future__ import annotations

import asyncio
import ftplib
import io
import logging
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncnet.ftp import FTPServer
from asyncnet.ftp._server_data import (
    DataAddressRefused,
    eprt_address,
    port_address,
    same_host,
)

from .ftp_server_raw import TIMEOUT, control

pytestmark = pytest.mark.timeout(30)

USERS = {"guest": "s3cret"}


# -- the arguments, without sockets ----------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "peer", "expected"),
    [
        ("127,0,0,1,200,10", "127.0.0.1", ("127.0.0.1", 200 * 256 + 10)),
        (" 127,0,0,1,4,0 ", "127.0.0.1", ("127.0.0.1", 1024)),
        ("127,0,0,1,255,255", "::ffff:127.0.0.1", ("127.0.0.1", 65535)),  # dual-stack peer
    ],
)
def test_port_arguments_that_are_accepted(
    argument: str, peer: str, expected: tuple[str, int]
) -> None:
    assert port_address(argument, peer) == expected


@pytest.mark.parametrize(
    ("argument", "peer", "code", "says"),
    [
        ("127,0,0,2,200,10", "127.0.0.1", "501", "address this connection comes from"),
        ("10,0,0,9,200,10", "127.0.0.1", "501", "address this connection comes from"),
        ("127,0,0,1,0,21", "127.0.0.1", "501", "privileged port"),
        ("127,0,0,1,3,255", "127.0.0.1", "501", "privileged port"),
        ("127,0,0,1,200", "127.0.0.1", "501", "syntax"),
        ("127,0,0,1,200,10,1", "127.0.0.1", "501", "syntax"),
        ("127,0,0,256,200,10", "127.0.0.1", "501", "syntax"),
        ("127,0,0,1,-1,10", "127.0.0.1", "501", "syntax"),
        ("127,0,0,1,2000,10", "127.0.0.1", "501", "syntax"),
        ("", "127.0.0.1", "501", "syntax"),
    ],
)
def test_port_arguments_that_are_refused(argument: str, peer: str, code: str, says: str) -> None:
    with pytest.raises(DataAddressRefused) as refused:
        port_address(argument, peer)
    assert refused.value.code == code
    assert says in refused.value.text


@pytest.mark.parametrize(
    ("argument", "peer", "expected"),
    [
        ("|1|127.0.0.1|6000|", "127.0.0.1", ("127.0.0.1", 6000)),
        ("|2|::1|6000|", "::1", ("::1", 6000)),
        ("!2!::1!6000!", "::1", ("::1", 6000)),  # any delimiter (RFC 2428)
        ("|2|0:0:0:0:0:0:0:1|6000|", "::1", ("::1", 6000)),
        ("|1|127.0.0.1|6000|", "::ffff:127.0.0.1", ("127.0.0.1", 6000)),
    ],
)
def test_eprt_arguments_that_are_accepted(
    argument: str, peer: str, expected: tuple[str, int]
) -> None:
    assert eprt_address(argument, peer) == expected


@pytest.mark.parametrize(
    ("argument", "peer", "code"),
    [
        ("|1|127.0.0.2|6000|", "127.0.0.1", "501"),
        ("|2|::2|6000|", "::1", "501"),
        ("|2|::1|6000|", "127.0.0.1", "501"),
        ("|1|::1|6000|", "::1", "501"),  # protocol and address disagree
        ("|3|127.0.0.1|6000|", "127.0.0.1", "522"),
        ("|1|127.0.0.1|80|", "127.0.0.1", "501"),
        ("|1|127.0.0.1|70000|", "127.0.0.1", "501"),
        ("|1|127.0.0.1|x|", "127.0.0.1", "501"),
        ("|1|127.0.0.1|6000", "127.0.0.1", "501"),
        ("|1|localhost|6000|", "127.0.0.1", "501"),
        ("", "127.0.0.1", "501"),
    ],
)
def test_eprt_arguments_that_are_refused(argument: str, peer: str, code: str) -> None:
    with pytest.raises(DataAddressRefused) as refused:
        eprt_address(argument, peer)
    assert refused.value.code == code


@given(argument=st.text(max_size=60), extended=st.booleans())
def test_any_argument_is_the_peer_or_refused(argument: str, extended: bool) -> None:
    """Whatever a client sends, the parsers either name the peer itself at an
    unprivileged port or raise DataAddressRefused: never another host, never a crash."""
    parse = eprt_address if extended else port_address
    try:
        host, port = parse(argument, "127.0.0.1")
    except DataAddressRefused as refused:
        code = refused.code
        assert code in ("501", "522")
    else:
        assert host == "127.0.0.1"
        assert 1024 <= port <= 65535


@given(port=st.integers(1024, 65535))
def test_every_unprivileged_port_of_the_peer_round_trips(port: int) -> None:
    assert port_address(f"127,0,0,1,{port >> 8},{port & 255}", "127.0.0.1") == ("127.0.0.1", port)
    assert eprt_address(f"|1|127.0.0.1|{port}|", "127.0.0.1") == ("127.0.0.1", port)


# -- against the server ----------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    served = tmp_path / "served"
    served.mkdir()
    (served / "data.bin").write_bytes(bytes(range(256)) * 1000)
    (served / "sub").mkdir()
    return served


async def test_ftplib_in_active_mode(root: Path) -> None:
    """set_pasv(False): RETR, STOR, NLST, MLSD and LIST over PORT data connections."""

    def session() -> dict[str, object]:
        host, port = server.address
        ftp = ftplib.FTP()
        ftp.connect(host, port, timeout=10)
        try:
            ftp.login("guest", USERS["guest"])
            ftp.set_pasv(False)
            got = bytearray()
            ftp.retrbinary("RETR data.bin", got.extend)
            ftp.storbinary("STOR sub/up.bin", io.BytesIO(b"u" * 70000))
            lines: list[str] = []
            ftp.retrlines("LIST", lines.append)
            return {
                "retr": bytes(got),
                "nlst": sorted(ftp.nlst()),
                "mlsd": {name: facts["type"] for name, facts in ftp.mlsd()},
                "list": len(lines),
            }
        finally:
            ftp.close()

    async with FTPServer(root, users=USERS) as server:
        got = await asyncio.to_thread(session)
    assert got["retr"] == (root / "data.bin").read_bytes()
    assert (root / "sub" / "up.bin").read_bytes() == b"u" * 70000
    assert got["nlst"] == ["data.bin", "sub"]
    assert got["mlsd"] == {"data.bin": "file", "sub": "dir"}
    assert got["list"] == 2


async def test_port_to_another_address_is_refused_without_connecting(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The FTP bounce (RFC 2577): PORT and EPRT naming a host other than the client's
    own are 501; no connection is attempted (the suite's loopback guard would fail the
    test had the server tried 127.0.0.2), nothing is transferred, and it is logged."""
    caplog.set_level(logging.INFO, logger="asyncnet.ftp.server")
    async with FTPServer(root, users=USERS) as server, control(server.address) as ftp:
        await ftp.login("guest", USERS["guest"])
        port = await ftp.send("PORT 127,0,0,2,200,10")
        eprt = await ftp.send("EPRT |1|127.0.0.2|51210|")
        retr = await ftp.send("RETR data.bin")
    assert port.startswith("501")
    assert eprt.startswith("501")
    assert "only to the address this connection comes from" in port
    assert retr.startswith("503")  # no data connection was set up
    assert [r.getMessage() for r in caplog.records if "another host" in r.getMessage()] == [
        "ftp 127.0.0.1: PORT to another host refused",
        "ftp 127.0.0.1: EPRT to another host refused",
    ]


async def test_port_to_a_closed_port_is_425(root: Path) -> None:
    with socket.socket() as sock:  # a port known to be free, and nobody listening
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
        async with FTPServer(root, users=USERS) as server, control(server.address) as ftp:
            await ftp.login("guest", USERS["guest"])
            reply = await ftp.send(f"EPRT |1|127.0.0.1|{closed}|")
    assert reply.startswith("425")


async def test_epsv_all_refuses_the_other_modes(root: Path) -> None:
    async with FTPServer(root, users=USERS) as server, control(server.address) as ftp:
        await ftp.login("guest", USERS["guest"])
        assert (await ftp.send("EPSV ALL")).startswith("200")
        for line in ("PASV", "PORT 127,0,0,1,200,10", "EPRT |1|127.0.0.1|51210|"):
            assert (await ftp.send(line)).startswith("503"), line
        assert (await ftp.send("EPSV")).startswith("229")
        assert (await ftp.send("EPSV 2")).startswith("522")


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("::ffff:127.0.0.1", "127.0.0.1", True),
        ("::1", "0:0:0:0:0:0:0:1", True),
        ("fe80::1%lo", "fe80::1", True),
        ("127.0.0.2", "127.0.0.1", False),
        ("::1", "127.0.0.1", False),
        ("", "", False),
        ("not an address", "not an address", False),
    ],
)
def test_which_peer_may_use_a_passive_port(one: str, other: str, same: bool) -> None:
    """Port stealing (RFC 2577): a passive port's connection is kept only when its
    peer is the control connection's host (a second loopback address to attack from
    is outside what the suite may use, so the check itself is tested here)."""
    assert same_host(one, other) is same


async def test_the_client_itself_gets_the_passive_port(root: Path) -> None:
    async with FTPServer(root, users=USERS) as server, control(server.address) as ftp:
        await ftp.login("guest", USERS["guest"])
        reader, _ = await ftp.passive()
        assert (await ftp.send("RETR data.bin")).startswith("150")
        async with asyncio.timeout(TIMEOUT):
            assert await reader.read() == (root / "data.bin").read_bytes()
        assert (await ftp.reply()).startswith("226")


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="::1 cannot be bound here")
async def test_eprt_and_epsv_over_ipv6(root: Path) -> None:
    """ftplib on ::1 uses EPRT in active mode and EPSV in passive mode."""

    def session(passive: bool) -> bytes:
        ftp = ftplib.FTP()
        ftp.connect("::1", server.address[1], timeout=10)
        try:
            ftp.login("guest", USERS["guest"])
            ftp.set_pasv(passive)
            got = bytearray()
            ftp.retrbinary("RETR data.bin", got.extend)
            return bytes(got)
        finally:
            ftp.close()

    async with FTPServer(root, host="::1", users=USERS) as server:
        active = await asyncio.to_thread(session, False)
        passive = await asyncio.to_thread(session, True)
        async with control(server.address) as ftp:
            await ftp.login("guest", USERS["guest"])
            assert (await ftp.send("PASV")).startswith("501")  # IPv4 only: EPSV
    assert active == passive == (root / "data.bin").read_bytes()
