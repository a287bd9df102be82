"""Explicit FTPS on the embedded FTP server: AUTH TLS, PBSZ, PROT (RFC 4217).

The certificate comes from trustme; clients are stdlib ftplib.FTP_TLS (in a thread),
curl (subprocess; skipped when missing) and raw control connections for what
clients do not show (plaintext sent after AUTH TLS, the refusals).
"""

from __future__ import annotations

import asyncio
import ftplib
import io
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
import trustme

from asyncnet.errors import ConfigurationError
from asyncnet.ftp import FTPServer

from .ftp_server_raw import TIMEOUT, Control, control

pytestmark = [pytest.mark.all_loops, pytest.mark.timeout(60)]

USERS = {"guest": "s3cret"}
CURL = shutil.which("curl")


def _curl_version() -> tuple[int, ...]:
    if CURL is None:
        return ()
    first = subprocess.run([CURL, "--version"], capture_output=True, text=True, check=False)
    return tuple(int(n) for n in first.stdout.split()[1].split(".")[:2])


# curl 7.88 never handshakes on an active-mode FTPS data connection (pyftpdlib's
# TLS_FTPHandler hits the same timeout); curl 8.0 fixed it ("ftp: active mode with
# SSL, add the filter").
CURL_ACTIVE_FTPS = _curl_version() >= (8, 0)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def root(tmp_path: Path) -> Path:
    served = tmp_path / "served"
    served.mkdir()
    (served / "data.bin").write_bytes(bytes(range(256)) * 2000)
    (served / "empty.txt").write_bytes(b"")
    return served


def ftps(port: int, context: ssl.SSLContext) -> ftplib.FTP_TLS:
    """An ftplib FTPS session: AUTH TLS, login, PROT P."""
    ftp = ftplib.FTP_TLS(context=context)
    ftp.connect("127.0.0.1", port, timeout=10)
    ftp.login("guest", USERS["guest"])  # AUTH TLS first: ftplib's FTP_TLS.login does it
    ftp.prot_p()
    return ftp


@pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])
async def test_ftplib_ftp_tls_session(
    root: Path, server_context: ssl.SSLContext, client_context: ssl.SSLContext, passive: bool
) -> None:
    """FTP_TLS: RETR (and an empty file), STOR, NLST, MLSD, SIZE over protected data."""

    def session(port: int) -> dict[str, object]:
        ftp = ftps(port, client_context)
        try:
            ftp.set_pasv(passive)
            got, empty = bytearray(), bytearray()
            ftp.retrbinary("RETR data.bin", got.extend)
            ftp.retrbinary("RETR empty.txt", empty.extend)
            ftp.storbinary("STOR up.bin", io.BytesIO(b"u" * 300_000))
            return {
                "retr": bytes(got),
                "empty": bytes(empty),
                "nlst": sorted(ftp.nlst()),
                "mlsd": sorted(name for name, _ in ftp.mlsd()),
                "size": ftp.size("up.bin"),
                "cipher": ftp.sock.cipher() is not None,  # type: ignore[union-attr]
            }
        finally:
            ftp.close()

    async with FTPServer(root, users=USERS, tls=server_context) as server:
        got = await asyncio.to_thread(session, server.address[1])
    assert got["retr"] == (root / "data.bin").read_bytes()
    assert got["empty"] == b""
    assert (root / "up.bin").read_bytes() == b"u" * 300_000
    assert got["nlst"] == got["mlsd"] == ["data.bin", "empty.txt", "up.bin"]
    assert got["size"] == 300_000
    assert got["cipher"]


async def test_feat_offers_auth_tls_only_with_a_certificate(
    root: Path, server_context: ssl.SSLContext
) -> None:
    async with FTPServer(root, users=USERS) as plain, control(plain.address) as ftp:
        plain_feat = await ftp.send("FEAT")
        refused = await ftp.send("AUTH TLS")
    async with FTPServer(root, users=USERS, tls=server_context) as server:
        async with control(server.address) as ftp:
            tls_feat = await ftp.send("FEAT")
            unknown = await ftp.send("AUTH KERBEROS")
            early_pbsz = await ftp.send("PBSZ 0")
    assert "AUTH TLS" not in plain_feat
    assert refused.startswith("502")
    assert [line.strip() for line in tls_feat.splitlines()[-4:-1]] == ["AUTH TLS", "PBSZ", "PROT"]
    assert unknown.startswith("504")
    assert early_pbsz.startswith("503")


async def test_a_named_user_may_not_log_in_in_the_clear(
    root: Path, server_context: ssl.SSLContext
) -> None:
    """With a certificate, USER for a named user in the clear is 530 (the password
    would follow in the clear); anonymous users, whose files are public, may."""
    async with FTPServer(root, users=USERS, anonymous=True, tls=server_context) as server:
        async with control(server.address) as ftp:
            named = await ftp.send("USER guest")
            anonymous = await ftp.send("USER anonymous")
    assert named.startswith("530 log in over TLS")
    assert anonymous.startswith("230")


async def upgrade(ftp: Control, context: ssl.SSLContext) -> None:
    """AUTH TLS on a raw control connection, then the client side of the handshake."""
    assert (await ftp.send("AUTH TLS")).startswith("234")
    async with asyncio.timeout(TIMEOUT):
        await ftp.writer.start_tls(context, server_hostname="127.0.0.1")


async def test_data_must_be_protected_in_a_tls_session(
    root: Path, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    async with FTPServer(root, users=USERS, tls=server_context) as server:
        async with control(server.address) as ftp:
            await upgrade(ftp, client_context)
            await ftp.login("guest", USERS["guest"])
            unprotected = await ftp.send("EPSV")
            clear = await ftp.send("PROT C")
            assert (await ftp.send("PBSZ 0")).startswith("200")
            assert (await ftp.send("PROT P")).startswith("200")
            protected = await ftp.send("EPSV")
            ccc = await ftp.send("CCC")
    assert unprotected.startswith("521")
    assert clear.startswith("534")
    assert protected.startswith("229")
    assert ccc.startswith("534")


async def test_without_tls_required_the_clear_is_allowed(
    root: Path, server_context: ssl.SSLContext
) -> None:
    def session(port: int) -> bytes:
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", port, timeout=10)
        try:
            ftp.login("guest", USERS["guest"])
            got = bytearray()
            ftp.retrbinary("RETR data.bin", got.extend)
            return bytes(got)
        finally:
            ftp.close()

    async with FTPServer(root, users=USERS, tls=server_context, tls_required=False) as server:
        assert (
            await asyncio.to_thread(session, server.address[1]) == (root / "data.bin").read_bytes()
        )


async def test_plaintext_sent_after_auth_tls_is_dropped(
    root: Path, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    """STARTTLS command injection (CVE-2011-0411): "USER guest" sent in the clear in
    the same segment as AUTH TLS is never run as if it had come over TLS, so PASS
    over TLS finds no USER."""
    async with FTPServer(root, users=USERS, tls=server_context) as server:
        async with control(server.address) as ftp:
            ftp.writer.write(b"AUTH TLS\r\nUSER guest\r\n")
            assert (await ftp.reply()).startswith("234")
            async with asyncio.timeout(TIMEOUT):
                await ftp.writer.start_tls(client_context, server_hostname="127.0.0.1")
            after = await ftp.send(f"PASS {USERS['guest']}")
            assert (await ftp.send("NOOP")).startswith("200")
    assert after.startswith("503")  # no USER was given over TLS


async def test_a_failed_handshake_ends_the_session_quietly(
    root: Path, server_context: ssl.SSLContext
) -> None:
    """A client that answers 234 with garbage: the session ends, the server goes on."""
    async with FTPServer(root, users=USERS, tls=server_context) as server:
        async with control(server.address) as ftp:
            assert (await ftp.send("AUTH TLS")).startswith("234")
            ftp.writer.write(b"this is not a ClientHello\r\n" * 4)
            async with asyncio.timeout(TIMEOUT):
                while await ftp.reader.read(4096):  # the server's alert, then EOF
                    pass
        async with control(server.address) as again:
            assert (await again.send("NOOP")).startswith("200")


def test_a_client_side_context_is_refused(root: Path, client_context: ssl.SSLContext) -> None:
    with pytest.raises(ConfigurationError, match=r"server-side context: .*CLIENT_AUTH"):
        FTPServer(root, users=USERS, tls=client_context)


def test_the_server_sends_no_session_tickets(root: Path, ca: trustme.CA) -> None:
    """A ticket the client never reads makes its close a reset, which can cut the end
    of an upload off: the server turns them off on the context it is given."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    assert context.num_tickets == 2  # OpenSSL's default
    FTPServer(root, users=USERS, tls=context)
    assert context.num_tickets == 0


def test_tls_and_implicit_ssl_together_are_refused(
    root: Path, server_context: ssl.SSLContext
) -> None:
    with pytest.raises(ConfigurationError, match=r"tls= .* or ssl= .*not both"):
        FTPServer(root, users=USERS, tls=server_context, ssl=server_context)


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.mark.slow
@pytest.mark.skipif(CURL is None, reason="curl is not installed")
async def test_curl_uploads_arrive_whole(
    root: Path, server_context: ssl.SSLContext, ca_file: Path, tmp_path: Path
) -> None:
    """curl closes its upload's data connection as soon as it has sent it; with TLS
    session tickets unread on it, that close was a reset that cut the upload short
    (426, and a short file) in about 1 upload in 6.  Ten in a row arrive whole."""
    assert CURL is not None
    source = root / "data.bin"
    async with FTPServer(root, users=USERS, tls=server_context) as server:
        host, port = server.address
        for n in range(10):
            url = f"ftp://guest:{USERS['guest']}@{host}:{port}/up{n}.bin"
            proc = await asyncio.create_subprocess_exec(
                CURL,
                "-sS",
                "--max-time",
                "30",
                "--ssl-reqd",
                "--cacert",
                str(ca_file),
                "-T",
                str(source),
                url,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            async with asyncio.timeout(40):
                _, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()
            assert (root / f"up{n}.bin").read_bytes() == source.read_bytes()


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
@pytest.mark.parametrize(
    "mode",
    [
        pytest.param([], id="passive"),
        pytest.param(
            ["--ftp-port", "-"],
            id="active",
            marks=pytest.mark.skipif(
                not CURL_ACTIVE_FTPS, reason="curl before 8.0 cannot do active-mode FTPS"
            ),
        ),
    ],
)
async def test_curl_with_ssl_reqd(
    root: Path, server_context: ssl.SSLContext, ca_file: Path, tmp_path: Path, mode: list[str]
) -> None:
    """curl --ssl-reqd: AUTH (SSL, then TLS), PROT P, then download and upload."""
    assert CURL is not None
    async with FTPServer(root, users=USERS, tls=server_context) as server:
        host, port = server.address
        url = f"ftp://guest:{USERS['guest']}@{host}:{port}/"
        common = [CURL, "--silent", "--show-error", "--max-time", "30", "--ssl-reqd"]
        common += ["--cacert", str(ca_file), *mode]
        for args in (
            ["-o", str(tmp_path / "got.bin"), url + "data.bin"],
            ["-T", str(tmp_path / "got.bin"), url + "up.bin"],
        ):
            proc = await asyncio.create_subprocess_exec(
                *common, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            async with asyncio.timeout(40):
                _, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()
    assert (tmp_path / "got.bin").read_bytes() == (root / "data.bin").read_bytes()
    assert (root / "up.bin").read_bytes() == (root / "data.bin").read_bytes()
