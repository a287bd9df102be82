"""``sendmail --file``, ``-H``, ``--cafile`` and the TLS policy, as a user runs them: the
demo in a subprocess against aiosmtpd on 127.0.0.1:0 with a trustme CA, STARTTLS and
AUTH; and every wrong input as one line naming what to change."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme

from .helpers import ROOT
from .test_mail_smtp import aiosmtpd_server
from .test_smtp_tls import Authenticator, Handler, server_context

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

PROG = "python -m asyncnet.demos.sendmail"

PREPARED = (
    b"From: Alice <alice@example.org>\n"
    b"To: Bob <bob@example.org>\n"
    b"Cc: carol@example.org\n"
    b"Bcc: secret@example.org\n"
    b"Subject: quarterly numbers\n"
    b"Content-Type: text/plain; charset=utf-8\n"
    b"\n"
    b"Attached, as promised.\n"
    b".leading dot stays\n"
)


async def sendmail(
    *args: str, stdin: bytes | None = None, password: str = "sesame"
) -> tuple[int, str, str]:
    """The demo as a process: (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asyncnet.demos.sendmail",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "ASYNCNET_MAIL_PASSWORD": password},
    )
    try:
        async with asyncio.timeout(40):
            out, err = await proc.communicate(stdin)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def one_line_error(status: int, err: str, expected_status: int = 1) -> str:
    """Check the CLI convention: the status, one line on stderr, no traceback."""
    assert status == expected_status, err
    assert err.count("\n") == 1, err
    assert err.startswith(f"{PROG}: error: "), err
    assert "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def cafile(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def eml(tmp_path: Path) -> str:
    path = tmp_path / "msg.eml"
    path.write_bytes(PREPARED)
    return str(path)


def tls_auth_server(ca: trustme.CA, handler: Handler, auth: Authenticator, *names: str) -> Any:
    return aiosmtpd_server(
        handler,
        tls_context=server_context(ca, *names),
        authenticator=auth,
        auth_required=True,
    )


async def test_eml_over_starttls_with_cafile_and_auth(
    ca: trustme.CA, cafile: str, eml: str
) -> None:
    """The prepared message, STARTTLS trusted through --cafile, AUTH, two -H: the envelope
    comes from From/To/Cc/Bcc, Bcc is not transmitted, the body arrives intact."""
    handler, auth = Handler(), Authenticator()
    async with tls_auth_server(ca, handler, auth) as port:
        status, out, err = await sendmail(
            "--port", str(port), "--file", eml, "--cafile", cafile, "--user", "u",
            "-H", "X-Tag: asyncnet", "-H", "Subject: Q3 numbers",
        )  # fmt: skip
    assert status == 0, err
    assert "sent to 3 of 3 recipient(s)" in out
    assert auth.attempts == 1
    [(sender, rcpts, data, encrypted)] = handler.messages
    assert encrypted
    assert sender == "alice@example.org"
    assert rcpts == ["bob@example.org", "carol@example.org", "secret@example.org"]
    assert b"secret@example.org" not in data
    assert b"Bcc" not in data
    assert b"\r\nX-Tag: asyncnet\r\n" in data
    assert b"Subject: Q3 numbers\r\n" in data
    assert b"quarterly" not in data
    assert data.endswith(b"\r\n\r\nAttached, as promised.\r\n.leading dot stays\r\n")


async def test_stdin_with_envelope_from_the_command_line(ca: trustme.CA, cafile: str) -> None:
    """``--file -`` reads stdin; --from/--to replace the envelope, the headers stay."""
    handler, auth = Handler(), Authenticator()
    async with tls_auth_server(ca, handler, auth) as port:
        status, out, err = await sendmail(
            "--port", str(port), "--file", "-", "--cafile", cafile, "--user", "u",
            "--from", "bounces@example.org", "--to", "dave@example.org",
            stdin=PREPARED,
        )  # fmt: skip
    assert status == 0, err
    assert "sent to 1 of 1 recipient(s)" in out
    [(sender, rcpts, data, encrypted)] = handler.messages
    assert (sender, rcpts, encrypted) == ("bounces@example.org", ["dave@example.org"], True)
    assert b"To: Bob <bob@example.org>\r\n" in data


async def test_untrusted_certificate_names_cafile(ca: trustme.CA, eml: str) -> None:
    """A server certificate from a CA the system does not trust: one line saying to add
    it with --cafile; nothing sent."""
    handler, auth = Handler(), Authenticator()
    async with tls_auth_server(ca, handler, auth) as port:
        status, _, err = await sendmail("--port", str(port), "--file", eml, "--user", "u")
    line = one_line_error(status, err)
    assert "certificate was not accepted" in line
    assert "--cafile FILE" in line
    assert handler.messages == []
    assert auth.attempts == 0


async def test_certificate_for_another_name_names_host(
    ca: trustme.CA, cafile: str, eml: str
) -> None:
    """A trusted certificate for another name: one line naming --host."""
    handler, auth = Handler(), Authenticator()
    async with tls_auth_server(ca, handler, auth, "mail.example.org") as port:
        status, _, err = await sendmail(
            "--port", str(port), "--file", eml, "--cafile", cafile, "--user", "u"
        )
    line = one_line_error(status, err)
    assert "not valid for '127.0.0.1'" in line
    assert "--host" in line
    assert handler.messages == []


async def test_login_without_tls_needs_tls_none(eml: str) -> None:
    """AUTH offered in cleartext, no STARTTLS: refused, naming --tls none; with it, sent."""
    handler, auth = Handler(), Authenticator()
    async with aiosmtpd_server(handler, authenticator=auth, auth_require_tls=False) as port:
        status, _, err = await sendmail("--port", str(port), "--file", eml, "--user", "u")
        line = one_line_error(status, err)
        assert "cleartext" in line
        assert "--tls none" in line
        assert auth.attempts == 0
        assert handler.messages == []
        status, out, err = await sendmail(
            "--port", str(port), "--file", eml, "--user", "u", "--tls", "none"
        )
    assert status == 0, err
    assert "sent to 3 of 3" in out
    assert auth.attempts == 1
    assert [encrypted for *_, encrypted in handler.messages] == [False]


async def test_implicit_tls_on_a_starttls_port_names_tls_and_port(
    ca: trustme.CA, cafile: str
) -> None:
    """--tls implicit against a server that greets in cleartext: one line, --tls/--port."""
    async with aiosmtpd_server(Handler(), tls_context=server_context(ca)) as port:
        status, _, err = await sendmail(
            "--port", str(port), "--tls", "implicit", "--cafile", cafile
        )
    assert "check --tls and --port" in one_line_error(status, err)


BAD = b"just some text\nwith no headers\n"


@pytest.mark.parametrize(
    ("args", "files", "status", "expected"),
    [
        (["--file", "missing.eml"], {}, 1, "--file missing.eml: no such file"),
        (["--file", "."], {}, 1, "--file .: is a directory"),
        (["--file", "bad.eml"], {"bad.eml": BAD}, 1, "not an RFC 5322 message"),
        (["--file", "empty.eml"], {"empty.eml": b""}, 1, "empty"),
        (
            ["--file", "m.eml"],
            {"m.eml": b"From: a@example.org\nSubject: x\n\nhi\n"},
            1,
            "has no To, Cc or Bcc address: give --to",
        ),
        (
            ["--file", "m.eml"],
            {"m.eml": b"To: b@example.org\n\nhi\n"},
            1,
            "has no From (or Sender) header: give --from",
        ),
        (["-H", "X-A: b\r\nBcc: evil@example.org"], {}, 2, "header injection"),
        (["-H", "X-A: b\nBcc: evil@example.org"], {}, 2, "header injection"),
        (["-H", "Bad Name: x"], {}, 2, "is not 'Name: value'"),
        (["-H", "no colon"], {}, 2, "is not 'Name: value'"),
        (["-H", "Subject: a", "-H", "Subject: b"], {}, 1, "-H Subject: There may be at most 1"),
        (["--file", "m.eml", "--subject", "x"], {"m.eml": PREPARED}, 2, "no --subject or --body"),
        (["--tls", "none", "--cafile", "ca.pem"], {"ca.pem": b""}, 2, "not with --tls none"),
        (["--cafile", "ca.pem"], {"ca.pem": b"not a certificate\n"}, 1, "--cafile ca.pem: not a"),
        (["--cafile", "missing.pem"], {}, 1, "--cafile missing.pem: no such file"),
        (["--key", "k.pem"], {"k.pem": b""}, 1, "--key needs --cert"),
    ],
)
async def test_each_wrong_input_is_one_line(
    args: list[str],
    files: dict[str, bytes],
    status: int,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refused before any connection (the port is closed): one line naming the option."""
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    monkeypatch.chdir(tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asyncnet.demos.sendmail", "--port", "1", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    async with asyncio.timeout(40):
        _, err = await proc.communicate()
    assert proc.returncode is not None
    line = one_line_error(proc.returncode, err.decode(), status)
    assert expected in line
    assert "is the server running" not in line  # it never got as far as connecting
