"""POP3 SASL (RFC 5034): the sans-IO continuation, the four client mechanisms, the local
server's PLAIN and CRAM-MD5 behind its login throttle, and the cleartext rules."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncnet.errors import LocalProtocolError
from asyncnet.mail import (
    Maildirs,
    PasswordAuthenticator,
    POP3Client,
    POP3Error,
    POP3ProtocolError,
    POP3ReplyError,
    POP3Server,
    TLSRequired,
)
from asyncnet.mail._pop3.protocol import (
    NEED_DATA,
    Continuation,
    POP3Protocol,
    Status,
)
from asyncnet.mail._pop3.sasl import SASLClient, cram_md5_digest, parse_plain
from asyncnet.servers import LoginThrottle

from .pop3_fakes import FakePOP3, scripted
from .test_hardening_mail import CountingAuthenticator, checks_within
from .test_pop3_client import tls_pair
from .test_pop3_server import Raw

USERS = {"alice": "wonderland", "bob": "builder"}
GREETING = b"+OK ready <1896.697170952@dbc.mtview.ca.us>\r\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def make_server(tmp_path: Path, **options: object) -> POP3Server:
    maildirs = Maildirs(tmp_path, list(USERS))
    maildirs.deliver_now("alice", b"Subject: hi\r\n\r\nhello\r\n")
    options.setdefault("failed_login_delay", 0.01)
    return POP3Server(maildirs, PasswordAuthenticator(USERS), port=0, **options)  # type: ignore[arg-type]


# -- the sans-IO side ------------------------------------------------------------------

AUTH_WIRE = GREETING + b"+ PDEyMz4=\r\n+\r\n+ \r\n+OK logged in\r\n"
AUTH_EVENTS = [
    Status(True, "ready <1896.697170952@dbc.mtview.ca.us>"),
    Continuation(b"<123>"),
    Continuation(b""),
    Continuation(b""),
    Status(True, "logged in"),
]


def run_auth(chunks: list[bytes]) -> list[object]:
    """Feed ``chunks`` to a protocol that sent ``AUTH CRAM-MD5``; answer each challenge."""
    proto = POP3Protocol()
    proto.send_command("AUTH", "CRAM-MD5")
    events: list[object] = []
    pending = list(chunks)
    while True:
        event = proto.next_event()
        if event is NEED_DATA:
            if not pending:
                return events
            proto.receive_data(pending.pop(0))
            continue
        events.append(event)
        if isinstance(event, Continuation):
            assert proto.send_sasl_response(b"answer") == b"YW5zd2Vy\r\n"


def test_continuation_whole_and_byte_by_byte() -> None:
    """'+ base64', '+' and '+ ' are challenges of the AUTH reply; its status follows."""
    assert run_auth([AUTH_WIRE]) == AUTH_EVENTS
    assert run_auth([AUTH_WIRE[i : i + 1] for i in range(len(AUTH_WIRE))]) == AUTH_EVENTS


@given(st.lists(st.integers(min_value=0, max_value=len(AUTH_WIRE)), max_size=10))
def test_continuation_any_split(cuts: list[int]) -> None:
    """Any split of the input gives the same challenges and status."""
    points = sorted(set(cuts))
    chunks = [AUTH_WIRE[a:b] for a, b in zip([0, *points], [*points, len(AUTH_WIRE)], strict=True)]
    assert run_auth(chunks) == AUTH_EVENTS


def test_plus_ok_under_auth_is_the_status() -> None:
    """'+OK' answers AUTH (it is not a '+' challenge); the next command's reply follows."""
    proto = POP3Protocol(expect_greeting=False)
    proto.send_command("AUTH", "PLAIN", "AGEAYg==")
    proto.send_command("STAT")
    proto.receive_data(b"+OK welcome\r\n+OK 1 10\r\n")
    assert proto.next_event() == Status(True, "welcome")
    assert proto.next_event() == Status(True, "1 10")


@pytest.mark.parametrize(
    ("verb", "line"),
    [("AUTH", b"+ not base64!"), ("AUTH", b"+ QQ"), ("STAT", b"+ QQ=="), ("STAT", b"+")],
)
def test_bad_or_unsolicited_challenge(verb: str, line: bytes) -> None:
    """A challenge that is not base64, or one to a command that is not AUTH, is a
    protocol error (P6)."""
    proto = POP3Protocol(expect_greeting=False)
    proto.send_command(verb)
    proto.receive_data(line + b"\r\n")
    with pytest.raises(POP3ProtocolError):
        proto.next_event()


def test_sasl_response_needs_an_auth_exchange() -> None:
    """A SASL response or a cancel with no AUTH waiting is refused before anything is sent."""
    proto = POP3Protocol(expect_greeting=False)
    with pytest.raises(LocalProtocolError):
        proto.send_sasl_response(b"x")
    proto.send_command("STAT")
    with pytest.raises(LocalProtocolError):
        proto.cancel_sasl()
    proto = POP3Protocol(expect_greeting=False)
    proto.send_command("AUTH", "LOGIN")
    assert proto.cancel_sasl() == b"*\r\n"


def test_plain_initial_response() -> None:
    """RFC 4616: authzid NUL user NUL password, in the AUTH command when it fits."""
    sasl = SASLClient("plain", "tim", "tanstaaftanstaaf")
    assert sasl.command() == ("AUTH", "PLAIN", b64(b"\0tim\0tanstaaftanstaaf"))
    assert parse_plain(b"\0tim\0tanstaaftanstaaf") == ("", "tim", "tanstaaftanstaaf")
    with pytest.raises(POP3ProtocolError):
        sasl.respond(b"")  # the initial response was sent: a challenge is unexpected


def test_long_initial_response_waits_for_the_challenge() -> None:
    """RFC 5034: a response that would take AUTH past 255 octets goes after the '+'."""
    token = "t" * 400
    sasl = SASLClient("XOAUTH2", "me@example.org", token)
    assert sasl.command() == ("AUTH", "XOAUTH2")
    expected = b"user=me@example.org\x01auth=Bearer " + token.encode() + b"\x01\x01"
    assert sasl.respond(b"") == expected
    # A refused token: the server explains in a challenge; the answer is empty.
    assert sasl.respond(b'{"status":"401"}') == b""
    assert sasl.server_error == b'{"status":"401"}'


def test_cram_md5_rfc2195_example() -> None:
    """RFC 2195's own example: tim / tanstaaftanstaaf."""
    challenge = b"<1896.697170952@postoffice.reston.mci.net>"
    assert cram_md5_digest("tanstaaftanstaaf", challenge) == "b913a602c7eda7a495b4e6e7334d3890"
    sasl = SASLClient("CRAM-MD5", "tim", "tanstaaftanstaaf")
    assert sasl.command() == ("AUTH", "CRAM-MD5")
    assert sasl.respond(challenge) == b"tim b913a602c7eda7a495b4e6e7334d3890"
    with pytest.raises(POP3ProtocolError):
        sasl.respond(challenge)


def test_login_steps_and_a_server_that_keeps_asking() -> None:
    """LOGIN: the user name, then the password; a third challenge is a protocol error."""
    sasl = SASLClient("login", "alice", "wonderland")
    assert sasl.command() == ("AUTH", "LOGIN")
    assert sasl.respond(b"Username:") == b"alice"
    assert sasl.respond(b"Password:") == b"wonderland"
    with pytest.raises(POP3ProtocolError):
        sasl.respond(b"Again:")


@pytest.mark.parametrize(
    ("mechanism", "user", "secret"),
    [
        ("PLAIN", "al\0ice", "pw"),
        ("PLAIN", "alice", "p\0w"),
        ("XOAUTH2", "al\1ice", "token"),
        ("XOAUTH2", "alice", "to ken"),
        ("GSSAPI", "alice", "pw"),
    ],
)
def test_what_a_mechanism_cannot_carry_is_refused(mechanism: str, user: str, secret: str) -> None:
    """P5: NUL in PLAIN, ^A or a space in XOAUTH2, an unknown mechanism: ValueError first."""
    with pytest.raises(LocalProtocolError):
        SASLClient(mechanism, user, secret)


# -- the client against our server -------------------------------------------------------


@pytest.mark.timeout(30)
async def test_local_server_plain_and_cram_md5(tmp_path: Path) -> None:
    """Our server offers SASL PLAIN and CRAM-MD5 in CAPA; the client logs in with each,
    and with PLAIN's response sent after the '+' (no initial response)."""
    async with make_server(tmp_path) as server:
        host, port = server.address[:2]
        async with POP3Client(host, port, timeout=5) as pop:
            assert (await pop.capa())["SASL"] == ["PLAIN", "CRAM-MD5"]
            assert await pop.authenticate("alice", "wonderland") == "cram-md5"
            assert await pop.stat() == (1, 22)
        async with POP3Client(host, port, timeout=5, allow_cleartext_auth=True) as pop:
            assert await pop.auth_methods() == ["cram-md5", "apop", "plain", "user"]
            await pop.auth("PLAIN", "alice", "wonderland")
            assert (await pop.stat())[0] == 1
        raw = await Raw.connect(server)
        assert await raw.send("AUTH PLAIN") == "+ "
        assert (await raw.send(b64(b"\0alice\0wonderland"))).startswith("+OK alice has 1")
        await raw.close()


@pytest.mark.timeout(30)
async def test_stls_then_plain_is_the_best(tmp_path: Path) -> None:
    """Over STLS (a trustme CA given as ssl=) the best method is SASL PLAIN."""
    server_ctx, client_ctx = tls_pair()
    async with make_server(tmp_path, ssl_context=server_ctx) as server:
        async with POP3Client(*server.address[:2], tls="stls", ssl=client_ctx, timeout=5) as pop:
            assert pop.encrypted
            assert (await pop.auth_methods())[0] == "plain"
            assert await pop.authenticate("alice", "wonderland") == "plain"
            assert (await pop.stat())[0] == 1


@pytest.mark.timeout(30)
async def test_a_refused_mechanism_leaves_the_session_usable(tmp_path: Path) -> None:
    """LOGIN, which our server does not offer, is -ERR naming the mechanism; then
    CRAM-MD5 in the same session works."""
    async with make_server(tmp_path) as server:
        async with POP3Client(*server.address[:2], timeout=5, allow_cleartext_auth=True) as pop:
            with pytest.raises(POP3ReplyError) as info:
                await pop.auth("LOGIN", "alice", "wonderland")
            assert info.value.command == "AUTH LOGIN"
            assert "unsupported SASL mechanism" in str(info.value)
            await pop.authenticate("alice", "wonderland", "cram-md5")
            assert (await pop.stat())[0] == 1


@pytest.mark.timeout(30)
async def test_sasl_failures_pay_the_login_throttle(tmp_path: Path) -> None:
    """SASL failures count in the server's login throttle as USER/PASS ones do: a wrong
    PLAIN, a wrong CRAM-MD5 and a wrong PASS make three failures in a row for the peer,
    each reply held for the doubling delay; the right password then logs in."""
    async with make_server(tmp_path, failed_login_delay=0.05) as server:
        throttle = server.login_throttle
        async with POP3Client(*server.address[:2], timeout=5, allow_cleartext_auth=True) as pop:
            loop = asyncio.get_running_loop()
            start = loop.time()
            for method in ("plain", "cram-md5", "user"):
                with pytest.raises(POP3ReplyError) as info:
                    await pop.authenticate("alice", "wrong", method)  # type: ignore[arg-type]
                assert "[AUTH]" in str(info.value)
            assert loop.time() - start >= 0.05 + 0.1 + 0.2
            assert throttle.failures(("127.0.0.1", 0)) == 3
            await pop.authenticate("alice", "wonderland", "plain")
        assert throttle.failures(("127.0.0.1", 0)) == 0


async def guess_with_sasl(server: POP3Server, mechanism: str, seconds: float) -> list[str]:
    """Ten connections guessing alice's password with AUTH at once for ``seconds``."""
    replies: list[str] = []
    connected = 0
    all_connected, go = asyncio.Event(), asyncio.Event()

    async def guess() -> None:
        nonlocal connected
        reader, writer = await asyncio.open_connection(*server.address[:2])
        try:
            await reader.readline()
            connected += 1
            if connected == 10:
                all_connected.set()
            await go.wait()
            for n in range(100):
                if mechanism == "PLAIN":
                    response = b64(b"\0alice\0guess%d" % n)
                    writer.write(f"AUTH PLAIN {response}\r\n".encode())
                else:
                    writer.write(b"AUTH CRAM-MD5\r\n")
                    challenge = (await reader.readline()).decode()
                    if challenge.startswith("+ "):
                        digest = cram_md5_digest(f"guess{n}", base64.b64decode(challenge[2:]))
                        writer.write(f"{b64(f'alice {digest}'.encode())}\r\n".encode())
                    else:  # refused before the challenge: that was the reply
                        replies.append(challenge.rstrip("\r\n"))
                        continue
                replies.append((await reader.readline()).decode().rstrip("\r\n"))
        finally:
            writer.transport.abort()

    tasks = [asyncio.create_task(guess()) for _ in range(10)]
    try:
        async with asyncio.timeout(10):
            await all_connected.wait()
        go.set()
        await asyncio.wait(tasks, timeout=seconds)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return replies


@pytest.mark.slow
@pytest.mark.timeout(30)
@pytest.mark.parametrize("mechanism", ["PLAIN", "CRAM-MD5"])
async def test_locked_out_peer_gets_sys_temp_for_auth(tmp_path: Path, mechanism: str) -> None:
    """Ten connections guessing with AUTH get the guesses of one, and past max_delay
    the peer is locked out: -ERR [SYS/TEMP] at once, its response unchecked."""
    auth = CountingAuthenticator(USERS)
    throttle = LoginThrottle(first_delay=0.05, max_delay=0.2, service="pop3")
    maildirs = Maildirs(tmp_path, list(USERS))
    async with POP3Server(maildirs, auth, port=0, login_throttle=throttle, grace=0.1) as server:
        start = asyncio.get_running_loop().time()
        replies = await guess_with_sasl(server, mechanism, 0.5)
        elapsed = asyncio.get_running_loop().time() - start
        checks = auth.checks
    locked = "-ERR [SYS/TEMP] too many failed logins; try again later"
    assert locked in replies
    assert set(replies) <= {locked, "-ERR [AUTH] invalid user name or password"}
    assert checks <= checks_within(elapsed, 0.05, 0.2) + 1
    assert throttle.refused_logins >= replies.count(locked) > 0


@pytest.mark.timeout(30)
async def test_server_refuses_malformed_sasl(tmp_path: Path) -> None:
    """'*' cancels, a response that is not base64 or not PLAIN's shape, CRAM-MD5 with an
    initial response and acting for another user are -ERR; the session goes on."""
    async with make_server(tmp_path) as server:
        raw = await Raw.connect(server)
        assert await raw.send("AUTH PLAIN") == "+ "
        assert await raw.send("*") == "-ERR AUTH cancelled"
        assert await raw.send("AUTH PLAIN") == "+ "
        assert await raw.send("%%%") == "-ERR AUTH response is not base64"
        assert (await raw.send("AUTH PLAIN " + b64(b"alice"))).startswith("-ERR AUTH PLAIN")
        assert (await raw.send("AUTH PLAIN =")).startswith("-ERR AUTH PLAIN")
        assert await raw.send("AUTH CRAM-MD5 " + b64(b"x")) == (
            "-ERR CRAM-MD5 takes no initial response"
        )
        reply = await raw.send("AUTH PLAIN " + b64(b"bob\0alice\0wonderland"))
        assert reply == "-ERR [AUTH] not authorized to act for another user"
        assert (await raw.send("AUTH")).startswith("-ERR AUTH needs a mechanism")
        assert await raw.send("STAT") == "-ERR STAT not allowed now"
        challenge = await raw.send("AUTH CRAM-MD5")
        assert challenge.startswith("+ ")
        text = base64.b64decode(challenge[2:])
        answer = f"alice {cram_md5_digest('wonderland', text)}".encode()
        assert (await raw.send(b64(answer))).startswith("+OK alice has 1")
        await raw.close()


@pytest.mark.timeout(30)
async def test_cram_md5_challenges_are_fresh(tmp_path: Path) -> None:
    """RFC 2195: every AUTH CRAM-MD5 gets a new challenge, so a response cannot be replayed."""
    async with make_server(tmp_path) as server:
        raw = await Raw.connect(server)
        first = await raw.send("AUTH CRAM-MD5")
        assert await raw.send("*") == "-ERR AUTH cancelled"
        second = await raw.send("AUTH CRAM-MD5")
        assert first != second
        await raw.close()


# -- cleartext rules ------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("method", ["plain", "login", "xoauth2", "user"])
async def test_secret_sending_methods_need_tls_or_consent(method: str) -> None:
    """P5: PLAIN, LOGIN, XOAUTH2 (and USER through authenticate()) over a connection
    without TLS raise TLSRequired naming allow_cleartext_auth, and nothing is sent."""
    fake = FakePOP3({"uid-1": b"Subject: x\r\n\r\nx\r\n"})
    async with fake, POP3Client("127.0.0.1", fake.port, timeout=5) as pop:
        with pytest.raises(TLSRequired) as info:
            await pop.authenticate("alice", "secret-pw", method)  # type: ignore[arg-type]
        assert "say tls='none' (or allow_cleartext_auth=True)" in str(info.value)
        assert (await pop.stat())[0] == 1  # the session is still usable
    assert not any(c.startswith(("AUTH", "USER", "PASS")) for c in fake.commands)
    assert b"secret-pw" not in fake.received


async def user_only(
    fake: FakePOP3, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """A server whose CAPA lists USER and nothing else, with no APOP timestamp."""
    writer.write(b"+OK no timestamp here\r\n")
    while (line := await fake.readline(reader)) is not None:
        if line == "CAPA":
            writer.write(b"+OK\r\nUSER\r\n.\r\n")
        else:
            writer.write(b"+OK\r\n")
            if line == "QUIT":
                return


@pytest.mark.timeout(30)
async def test_only_cleartext_methods_offered() -> None:
    """authenticate() without a method, against a server offering only USER over
    cleartext: TLSRequired (nothing sent); with allow_cleartext_auth it logs in."""
    async with scripted(user_only) as fake:
        async with POP3Client("127.0.0.1", fake.port, timeout=5) as pop:
            with pytest.raises(TLSRequired, match="every login method offered \\(USER\\)"):
                await pop.authenticate("alice", "pw")
        assert "USER alice" not in fake.commands
        async with POP3Client("127.0.0.1", fake.port, timeout=5, allow_cleartext_auth=True) as pop:
            assert await pop.authenticate("alice", "pw") == "user"
        assert "USER alice" in fake.commands


@pytest.mark.timeout(30)
async def test_no_method_in_common() -> None:
    """A server that lists neither USER, a known SASL mechanism nor an APOP timestamp."""

    async def script(fake: FakePOP3, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):  # type: ignore[no-untyped-def]
        writer.write(b"+OK hi\r\n")
        while (line := await fake.readline(reader)) is not None:
            if line == "CAPA":
                writer.write(b"+OK\r\nSASL GSSAPI\r\n.\r\n")
            else:
                writer.write(b"-ERR no\r\n")
                return

    async with scripted(script) as fake:
        async with POP3Client("127.0.0.1", fake.port, timeout=5) as pop:
            with pytest.raises(POP3Error, match="no login method asyncnet speaks"):
                await pop.authenticate("alice", "pw")


@pytest.mark.timeout(30)
async def test_saying_tls_none_is_consent(tmp_path: Path) -> None:
    """tls="none" given by the caller (as the demo's --tls none) allows PLAIN without
    TLS; the same host with tls left to its loopback default does not."""
    assert POP3Client("127.0.0.1", tls="none").allow_cleartext_auth
    assert POP3Client("127.0.0.1", ssl=False).allow_cleartext_auth
    assert not POP3Client("127.0.0.1").allow_cleartext_auth
    assert not POP3Client("127.0.0.1", tls="none", allow_cleartext_auth=False).allow_cleartext_auth
    async with make_server(tmp_path) as server:
        async with POP3Client(*server.address[:2], tls="none", timeout=5) as pop:
            assert await pop.authenticate("alice", "wonderland", "plain") == "plain"


def test_ssl_settings() -> None:
    """ssl=False means no TLS (and conflicts with tls='stls'); ssl and ssl_context are one."""
    from asyncnet.errors import ConfigurationError

    assert POP3Client("pop.example.org", ssl=False).tls == "none"
    with pytest.raises(ConfigurationError, match="ssl=False"):
        POP3Client("pop.example.org", tls="stls", ssl=False)
    _, client_ctx = tls_pair()
    with pytest.raises(ConfigurationError, match="not both"):
        POP3Client("127.0.0.1", ssl=client_ctx, ssl_context=client_ctx)
    assert POP3Client("127.0.0.1", ssl=client_ctx).ssl_context is client_ctx
    with pytest.raises(ConfigurationError):
        POP3Client("127.0.0.1", ssl="yes")  # type: ignore[arg-type]


# -- XOAUTH2 against a scripted server (no local server offers it) ---------------------------


def xoauth2_script(token: str, *, expect_initial: bool):  # type: ignore[no-untyped-def]
    """A server that checks XOAUTH2's response, and explains a refusal as Gmail does."""

    async def script(fake: FakePOP3, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):  # type: ignore[no-untyped-def]
        writer.write(b"+OK hi\r\n")
        while (line := await fake.readline(reader)) is not None:
            if line == "CAPA":
                writer.write(b"+OK\r\nSASL XOAUTH2\r\n.\r\n")
                continue
            if line.startswith("AUTH XOAUTH2"):
                words = line.split(" ")
                assert (len(words) == 3) == expect_initial
                if len(words) == 2:
                    writer.write(b"+ \r\n")
                    words.append(await fake.readline(reader) or "")
                sent = base64.b64decode(words[2])
                if sent == f"user=me@example.org\1auth=Bearer {token}\1\1".encode():
                    writer.write(b"+OK welcome\r\n")
                    continue
                error = json.dumps({"status": "401", "schemes": "Bearer"}).encode()
                writer.write(b"+ " + base64.b64encode(error) + b"\r\n")
                assert await fake.readline(reader) == ""  # the client's empty response
                writer.write(b"-ERR [AUTH] invalid token\r\n")
                continue
            if line == "QUIT":
                writer.write(b"+OK bye\r\n")
                return
            writer.write(b"-ERR no\r\n")

    return script


@pytest.mark.timeout(30)
@pytest.mark.parametrize("token", ["ya29.short", "ya29." + "x" * 300])
async def test_xoauth2(token: str) -> None:
    """XOAUTH2 with a short token (initial response) and a long one (after the '+');
    a refused token is -ERR with the server's JSON explanation, after an empty response."""
    script = xoauth2_script(token, expect_initial=len(token) < 100)
    async with scripted(script) as fake:
        async with POP3Client("127.0.0.1", fake.port, timeout=5, allow_cleartext_auth=True) as pop:
            assert "xoauth2" in await pop.auth_methods()
            with pytest.raises(POP3ReplyError) as info:
                await pop.authenticate("me@example.org", token + "-stale", "xoauth2")
            assert info.value.command == "AUTH XOAUTH2"
            assert '"status": "401"' in str(info.value)
            assert info.value.reply.startswith("[AUTH]")
            assert await pop.authenticate("me@example.org", token, "xoauth2") == "xoauth2"
    assert token not in " ".join(str(c) for c in fake.commands if not c.startswith("AUTH"))


@pytest.mark.timeout(30)
async def test_a_broken_challenge_closes_the_connection() -> None:
    """P6: a challenge that is not base64 is a protocol error; the connection is done."""

    async def script(fake: FakePOP3, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):  # type: ignore[no-untyped-def]
        writer.write(b"+OK hi\r\n")
        await fake.readline(reader)
        writer.write(b"+ ###\r\n")
        await fake.readline(reader)

    async with scripted(script) as fake:
        async with POP3Client("127.0.0.1", fake.port, timeout=5) as pop:
            with pytest.raises(POP3ProtocolError, match="not base64"):
                await pop.auth("CRAM-MD5", "alice", "pw")
            with pytest.raises(POP3Error, match="unusable"):
                await pop.stat()
