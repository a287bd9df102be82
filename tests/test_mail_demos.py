"""The mail demos as real processes: mailserver, sendmail and mailbox against each other."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import ROOT, read_listening_line, spawn

pytestmark = pytest.mark.slow

READY = r"SMTP on 127\.0\.0\.1:(\d+), POP3 on 127\.0\.0\.1:(\d+)"


def demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def mailserver(tmp_path: Path) -> Iterator[tuple[int, int, subprocess.Popen[str]]]:
    """The mailserver demo on free ports; yields (smtp port, pop3 port, process)."""
    args = ["-m", "asyncnet.demos.mailserver", "--port", "0", "--maildir", str(tmp_path / "md")]
    with spawn(args) as proc:
        match = read_listening_line(proc, READY)
        yield int(match[1]), int(match[2]), proc
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_send_then_read_then_save(
    mailserver: tuple[int, int, subprocess.Popen[str]], tmp_path: Path
) -> None:
    """sendmail reports the partial failure; mailbox shows the table; --save is idempotent."""
    smtp, pop3, server = mailserver
    sent = demo("asyncnet.demos.sendmail", "--port", str(smtp), "--subject", "Tea \x1b[2J time")
    assert sent.returncode == 0, sent.stderr
    assert "Error sending to nobody@localhost: code 550" in sent.stdout
    assert "sent to 2 of 3 recipient(s)" in sent.stdout

    total = demo("asyncnet.demos.sendmail", "--port", str(smtp), "--to", "nobody@localhost")
    assert total.returncode == 1
    assert "every recipient was refused" in total.stderr
    assert "Traceback" not in total.stderr

    listed = demo("asyncnet.demos.mailbox", "--port", str(pop3))
    assert listed.returncode == 0, listed.stderr
    assert "1 message(s)" in listed.stdout
    assert "Tea \\x1b[2J time" in listed.stdout  # escaped, never raw
    assert "\x1b" not in listed.stdout

    # alice is not the local pair's own user: her password is asked for, or given.
    refused = demo("asyncnet.demos.mailbox", "--port", str(pop3), "--user", "alice")
    assert refused.returncode == 1
    assert "set $ASYNCNET_MAIL_PASSWORD" in refused.stderr
    alice = {"ASYNCNET_MAIL_PASSWORD": "demo"}
    save = tmp_path / "saved"
    first = demo(
        "asyncnet.demos.mailbox", "--port", str(pop3), "--user", "alice", "--save", str(save),
        env=alice,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "saved 1 new message(s)" in first.stdout
    again = demo(
        "asyncnet.demos.mailbox", "--port", str(pop3), "--user", "alice", "--save", str(save),
        "--delete", env=alice,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "saved 0 new message(s)" in again.stdout
    assert "1 already there; 1 deleted" in again.stdout
    assert len(list((save / "new").iterdir())) == 1
    empty = demo("asyncnet.demos.mailbox", "--port", str(pop3), "--user", "alice", env=alice)
    assert "0 message(s)" in empty.stdout

    server.send_signal(signal.SIGINT)
    out, _ = server.communicate(timeout=10)
    assert "alice <- demo@localhost: Tea \\x1b[2J time" in out


@pytest.mark.parametrize("name", ["mailserver", "sendmail", "mailbox"])
def test_help_and_bad_flags(name: str) -> None:
    """--help exits 0; an unknown flag exits 2."""
    assert demo(f"asyncnet.demos.{name}", "--help").returncode == 0
    assert demo(f"asyncnet.demos.{name}", "--no-such-flag").returncode == 2


@pytest.mark.parametrize("name", ["sendmail", "mailbox"])
def test_refused_is_one_line(name: str, closed_port: int) -> None:
    """Nobody listening: one line saying what to do, exit 1, no traceback."""
    done = demo(f"asyncnet.demos.{name}", "--port", str(closed_port))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"python -m asyncnet.demos.{name}: error: ")
    assert "is the server running? check --host and --port" in done.stderr
    assert "Traceback" not in done.stderr


def test_port_in_use() -> None:
    """mailserver on a busy port: one line, exit 1."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = demo("asyncnet.demos.mailserver", "--smtp-port", str(port), "--pop3-port", "0")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"127.0.0.1:{port}" in done.stderr
    assert "already in use" in done.stderr
    assert "Traceback" not in done.stderr


def test_header_injection_from_cli(closed_port: int) -> None:
    """A subject with CR/LF is refused before connecting: exit 1, one line."""
    done = demo("asyncnet.demos.sendmail", "--port", str(closed_port), "--subject", "a\r\nBcc: x")
    assert done.returncode == 1
    assert "linefeed" in done.stderr


def test_tour_has_the_mail_section() -> None:
    """make demo's tour shows the mail stop: one refused, read back over POP3."""
    done = demo("asyncnet.demos.tour")
    assert done.returncode == 0, done.stderr
    assert "== mail:" in done.stdout
    assert "refused {'nobody@localhost': (550" in done.stdout
    assert "after DELE and QUIT: STAT (0, 0)" in done.stdout


def test_tls_required_but_not_offered(mailserver: tuple[int, int, subprocess.Popen[str]]) -> None:
    """--tls stls / starttls against the local pair (no TLS): one line, exit 1, no password."""
    smtp, pop3, _ = mailserver
    for args in (
        ("asyncnet.demos.mailbox", "--port", str(pop3), "--tls", "stls"),
        ("asyncnet.demos.sendmail", "--port", str(smtp), "--tls", "starttls"),
    ):
        done = demo(*args)
        assert done.returncode == 1, done.stdout
        assert "TLS required but not available" in done.stderr
        assert done.stderr.count("\n") == 1
