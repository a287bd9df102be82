"""Every demo's command line follows one convention, so a user learns it once.

``--help`` exits 0; a bad flag or value is one line on stderr and exit 2; an
expected failure (port in use, refused, bad host, missing file) is one line that
says what to do and exit 1; no traceback unless ``-vv``.  Each program runs as a
subprocess, exactly as a user would start it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.helpers import ROOT, read_listening_line, spawn

pytestmark = pytest.mark.slow

MODULES = [
    "upper",
    "echo",
    "chat",
    "creosote",
    "byteorder",
    "dns",
    "timeouts",
    "embedding",
    "tour",
    "mailserver",
    "sendmail",
    "mailbox",
    "ftp",
    "web",
    "fetch",
    "links",
    "office",
]
# What a demo needs before argparse looks at the flags (never contacted: port 1).
REQUIRED = {
    "creosote": ["listen"],
    "fetch": ["http://127.0.0.1:1/"],
    "links": ["http://127.0.0.1:1/"],
}
CLASSICS = [
    "udpserv1.py",
    "udpcli1.py",
    "tcpserv1.py",
    "tcpcli1.py",
    "SockServTCP.py",
    "SockServUDP.py",
    "creosote.py",
]


def run(args: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` from the repository root; never longer than 30 s."""
    return subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        timeout=30,
    )


def module(name: str, *args: str) -> list[str]:
    return ["-m", f"asyncnet.demos.{name}", *args]


def assert_one_line(result: subprocess.CompletedProcess[str], status: int) -> str:
    """Exit ``status``, exactly one line on stderr, no traceback; return that line."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.returncode == status, (result.returncode, result.stderr)
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port number taken on 127.0.0.1 for both TCP (listening) and UDP."""
    for _ in range(20):
        tcp = socket.create_server(("127.0.0.1", 0))
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("127.0.0.1", tcp.getsockname()[1]))
        except OSError:  # that number is taken for UDP by someone else: try another
            tcp.close()
            udp.close()
            continue
        with tcp, udp:
            yield tcp.getsockname()[1]
        return
    pytest.fail("no port number free for both TCP and UDP")


# -- --help and bad flags, for every program ---------------------------------------


@pytest.mark.parametrize("name", MODULES)
def test_help_exits_zero(name: str) -> None:
    """``--help`` prints the usage and exits 0; it never starts the demo."""
    result = run(module(name, "--help"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m asyncnet.demos.{name}")
    assert "-v, --verbose" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("name", MODULES)
def test_unknown_flag_is_one_line_and_exit_2(name: str) -> None:
    """An unknown flag is a usage error: one line naming it, exit 2."""
    line = assert_one_line(run(module(name, *REQUIRED.get(name, []), "--no-such-flag")), 2)
    assert line.startswith(f"python -m asyncnet.demos.{name}: error: ")
    assert "--no-such-flag" in line
    assert "--help" in line


@pytest.mark.parametrize("script", CLASSICS)
def test_classic_help_and_bad_flag(script: str) -> None:
    """The classic programs use argparse too: --help exits 0, a bad flag is one line, exit 2."""
    result = run([f"demos/{script}", "--help"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {script}")
    line = assert_one_line(run([f"demos/{script}", "--no-such-flag"]), 2)
    assert line == f"{script}: error: unrecognized arguments: --no-such-flag (see --help)"


# -- values checked before anything starts ------------------------------------------


BAD_VALUES = [
    (["upper", "--port", "70000"], "--port", "0-65535"),
    (["upper", "--port", "-1"], "--port", "0-65535"),
    (["upper", "--port", "http"], "--port", "not a port number"),
    (["upper", "--workers", "0"], "--workers", "1 or more"),
    (["upper", "--client", "--timeout", "0"], "--timeout", "more than 0"),
    (["upper", "--client", "--udp", "--retries", "-1"], "--retries", "0 or more"),
    (["echo", "--timeout", "-5"], "--timeout", "more than 0"),
    (["echo", "--timeout", "nan"], "--timeout", "more than 0"),
    (["chat", "--max-backlog", "0"], "--max-backlog", "1 or more"),
    (["chat", "--port", "99999"], "--port", "0-65535"),
    (["creosote", "listen", "--web", "70000"], "--web", "0-65535"),
    (["creosote", "spew", "--bufsize", "0", "x"], "--bufsize", "1 or more"),
    (["creosote", "spew", "--file", "/nonexistent/asyncnet"], "--file", "no such file"),
    (["creosote", "spew"], "spew", "needs a message or --file"),
    (["creosote"], "required", "{listen,spew}"),
    (["dns", "--timeout", "-1"], "--timeout", "more than 0"),
    (["dns", "--hosts-file", "/nonexistent/hosts"], "--hosts-file", "no such file"),
    (["timeouts", "--timeout", "0"], "--timeout", "more than 0"),
    (["embedding", "surplus"], "unrecognized", "surplus"),
    (["tour", "surplus"], "unrecognized", "surplus"),
    (["upper", "--host", "0.0.0.0", "--port", "0"], "--host 0.0.0.0", "--all-interfaces"),
    (["chat", "--host", "::", "--port", "0"], "--host ::", "--all-interfaces"),
    (["echo", "--host", "0", "--port", "0"], "--host 0", "--all-interfaces"),
    (["upper", "--host", "0.0", "--port", "0"], "--host 0.0", "--all-interfaces"),
    (["creosote", "listen", "--host", "0.0.0.0"], "--host 0.0.0.0", "--all-interfaces"),
    (["echo", "--all-interfaces", "--host", "::1", "--port", "0"], "--all-interfaces", "--host"),
    (["mailserver", "--port", "70000"], "--port", "0-65535"),
    (["mailserver", "--smtp-port", "smtp"], "--smtp-port", "not a port number"),
    (["mailserver", "--host", "192.0.2.1"], "--host", "loopback"),
    (["sendmail", "--port", "-1"], "--port", "0-65535"),
    (["sendmail", "--timeout", "0"], "--timeout", "more than 0"),
    (["mailbox", "--timeout", "inf"], "--timeout", "more than 0"),
    (["mailbox", "--tls", "maybe"], "--tls", "invalid choice"),
    (["ftp", "--server", "no-port-here"], "--server", "HOST:PORT"),
    (["ftp", "--server", "127.0.0.1:99999"], "--server", "0-65535"),
    (["ftp", "--put", "/nonexistent/asyncnet"], "--put", "no such file"),
    (["ftp", "--timeout", "-1"], "--timeout", "more than 0"),
    (["web", "--port", "65536"], "--port", "0-65535"),
    (["web", "--host", "0.0.0.0", "--port", "0"], "--host 0.0.0.0", "--all-interfaces"),
    (["fetch", "http://127.0.0.1:1/", "--timeout", "0"], "--timeout", "more than 0"),
    (["fetch", "http://127.0.0.1:1/", "--bytes", "-1"], "--bytes", "0 or more"),
    (["links", "http://127.0.0.1:1/", "--max-pages", "0"], "--max-pages", "1 or more"),
    (["links", "http://127.0.0.1:1/", "--concurrency", "x"], "--concurrency", "whole number"),
]


@pytest.mark.parametrize(("argv", "names", "says"), BAD_VALUES)
def test_bad_value_is_one_line_and_exit_2(argv: list[str], names: str, says: str) -> None:
    """A value out of range is refused up front, naming the flag (the
    flag, never the library's keyword such as ``all_interfaces=True``)."""
    line = assert_one_line(run(module(*argv)), 2)
    assert names in line
    assert says in line
    assert "all_interfaces=" not in line


def test_byteorder_bad_value_is_one_line_per_value() -> None:
    """byteorder reports each value it cannot read on one line and exits 1."""
    result = run(module("byteorder", "80", "not-a-number"))
    line = assert_one_line(result, 1)
    assert line.startswith("not-a-number: error: ")
    assert "0x50" in result.stdout  # the good value is still shown


@pytest.mark.parametrize("script", ["tcpserv1.py", "udpcli1.py", "SockServUDP.py"])
def test_classic_bad_port_is_a_usage_error(script: str) -> None:
    line = assert_one_line(run([f"demos/{script}", "70000"]), 2)
    assert "port must be" in line


# -- expected failures at run time -------------------------------------------------


SERVERS = [
    ["upper"],
    ["upper", "--workers", "2"],
    ["echo"],
    ["chat"],
    ["web"],
    ["mailserver", "--pop3-port", "0", "--smtp-port"],
    ["mailserver", "--smtp-port", "0", "--pop3-port"],
]


@pytest.mark.parametrize("argv", SERVERS, ids=" ".join)
def test_busy_port_is_one_line_and_exit_1(argv: list[str], busy_port: int) -> None:
    """Port in use: one line naming the address and what to do, exit 1."""
    port_flag = [] if argv[-1].endswith("-port") else ["--port"]
    line = assert_one_line(run(module(*argv, *port_flag, str(busy_port))), 1)
    assert f"127.0.0.1:{busy_port}" in line
    assert "already in use" in line
    assert "--port" in line


def test_creosote_busy_ports_are_one_line(busy_port: int) -> None:
    """The bucket's UDP port and the web view's TCP port, each busy in turn."""
    line = assert_one_line(run(module("creosote", "listen", "--port", str(busy_port))), 1)
    assert "already in use" in line
    web = run(module("creosote", "listen", "--port", "0", "--web", str(busy_port)))
    line = assert_one_line(web, 1)
    assert str(busy_port) in line
    assert "in use" in line


@pytest.mark.parametrize(
    "script", ["tcpserv1.py", "udpserv1.py", "SockServTCP.py", "SockServUDP.py", "creosote.py"]
)
def test_classic_busy_port_is_one_line(script: str, busy_port: int) -> None:
    line = assert_one_line(run([f"demos/{script}", str(busy_port)]), 1)
    assert f"cannot listen on udp 127.0.0.1:{busy_port}" in line or (
        f"cannot listen on 127.0.0.1:{busy_port}" in line
    )


def test_verbose_verbose_shows_the_traceback_too(busy_port: int) -> None:
    """-vv: the traceback for whoever debugs, and still the one-line summary last."""
    result = run(module("echo", "-vv", "--port", str(busy_port)))
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "already in use" in result.stderr.splitlines()[-1]


def test_refused_clients_are_one_line(closed_port: int) -> None:
    """Nothing listens: the clients say so and what to check, exit 1."""
    line = assert_one_line(run(module("echo", "--client", "hi", "--port", str(closed_port))), 1)
    assert "refused" in line.lower()
    assert "is the server running?" in line
    result = run(module("upper", "--client", "--port", str(closed_port)), stdin="hi\n")
    assert_one_line(result, 1)
    result = run(["demos/tcpcli1.py", str(closed_port)])
    line = assert_one_line(result, 1)
    assert "is the server running?" in line


@pytest.mark.parametrize(
    "argv",
    [
        ["sendmail", "--port", "{port}"],
        ["mailbox", "--port", "{port}"],
        ["ftp", "--server", "127.0.0.1:{port}"],
        ["fetch", "http://127.0.0.1:{port}/"],
        ["links", "http://127.0.0.1:{port}/"],
    ],
    ids=lambda argv: argv[0],
)
def test_refused_network_clients_are_one_line(argv: list[str], closed_port: int) -> None:
    """The mail, FTP and web clients: refused is one line naming the flag to check."""
    line = assert_one_line(run(module(*(a.format(port=closed_port) for a in argv))), 1)
    assert line.startswith(f"python -m asyncnet.demos.{argv[0]}: error: ")
    assert "refused" in line.lower()
    assert "is the server running?" in line
    flag = {"ftp": "--server", "fetch": "the URL", "links": "the URL"}.get(
        argv[0], "--host and --port"
    )
    assert f"check {flag}" in line


def test_mail_tls_required_but_not_offered() -> None:
    """--tls stls against a POP3 server without STLS: one line, exit 1."""
    with spawn(module("mailserver", "--port", "0")) as server:
        match = read_listening_line(
            server, r"SMTP on 127\.0\.0\.1:(\d+), POP3 on 127\.0\.0\.1:(\d+)"
        )
        result = run(module("mailbox", "--port", match[2], "--tls", "stls"))
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=10) == 0
    line = assert_one_line(result, 1)
    assert "TLS required but not available" in line


@pytest.mark.parametrize("argv", [["web"], ["mailserver"]], ids=" ".join)
def test_servers_exit_0_on_ctrl_c(argv: list[str]) -> None:
    """web and mailserver run through cli.serve (whose second Ctrl-C is tested above
    with a stuck handler): one SIGINT is a graceful stop, exit 0."""
    with spawn(module(*argv, "--port", "0")) as server:
        read_listening_line(server, r"127\.0\.0\.1:\d+")
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=10) == 0


def test_unresolvable_host_is_one_line() -> None:
    """A --host that does not resolve is named in the one line (.invalid never resolves)."""
    result = run(module("echo", "--host", "nosuch.invalid", "--port", "0"))
    line = assert_one_line(result, 1)
    assert "nosuch.invalid" in line
    assert "--host" in line


# -- -v: connections, with the peer named once --------------------------------------


def test_verbose_logs_each_connection_with_its_peer_once() -> None:
    """-v logs the listening socket and each connection's open and close with its peer."""
    with spawn(module("upper", "-v", "--port", "0")) as proc:
        port = int(read_listening_line(proc, r"tcp://127\.0\.0\.1:(\d+)")[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            peer = "{}:{}".format(*client.getsockname()[:2])
            client.sendall(b"hello\n\n")
            reply = b""
            while chunk := client.recv(100):
                reply += chunk
        assert reply == b"HELLO\n"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert re.search(r"INFO asyncnet\.server: Upper listening on 127\.0\.0\.1:\d+", err), err
    opened = [line for line in err.splitlines() if f"connection from {peer}" in line]
    assert len(opened) == 2, err  # opened, then closed
    assert opened[1].endswith(f"connection from {peer} closed")
    assert all(line.count(peer) <= 1 for line in err.splitlines()), err
    assert "DEBUG" not in err


STUCK_SERVER = """
import asyncio, sys
from asyncnet import StreamHandler, tcp_server
from asyncnet.demos import _cli as cli

class Stuck(StreamHandler):
    async def handle(self):
        await self.reader.read(1)
        print("handling", flush=True)
        await asyncio.sleep(60)

sys.exit(cli.serve(tcp_server(Stuck, port=0, grace=60), name="stuck"))
"""


@pytest.mark.parametrize("no_uvloop", ["1", ""], ids=["asyncio", "uvloop-if-installed"])
def test_second_ctrl_c_stops_at_once(no_uvloop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first Ctrl-C waits for a busy handler (grace 60 s); the
    second one stops the demo at once, exit status 130."""
    monkeypatch.setenv("ASYNCNET_NO_UVLOOP", no_uvloop)
    with spawn(["-c", STUCK_SERVER]) as proc:
        port = int(read_listening_line(proc, r"tcp://127\.0\.0\.1:(\d+)")[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"x")
            read_listening_line(proc, "handling")
            proc.send_signal(signal.SIGINT)
            with pytest.raises(subprocess.TimeoutExpired):  # graceful: still waiting
                proc.wait(timeout=0.5)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 130


STUCK_WORKERS = STUCK_SERVER.replace(
    'sys.exit(cli.serve(tcp_server(Stuck, port=0, grace=60), name="stuck"))',
    "from asyncnet._workers import run_workers\n"
    "sys.exit(run_workers(tcp_server(Stuck, port=0, grace=60), workers=2,"
    ' ready=cli.announce("stuck")))',
)


def test_second_signal_stops_workers_at_once() -> None:
    """The same with --workers: the supervisor kills its workers on a second signal."""
    assert "run_workers" in STUCK_WORKERS
    with spawn(["-c", STUCK_WORKERS]) as proc:
        port = int(read_listening_line(proc, r"tcp://127\.0\.0\.1:(\d+)")[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"x")
            read_listening_line(proc, "handling")
            proc.send_signal(signal.SIGINT)  # the supervisor only, not the process group
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(timeout=0.5)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 130


def test_a_peers_words_stay_one_escaped_line() -> None:
    """A hostile server's reply in the failure line cannot add lines or drive the terminal."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(20)
        port = listener.getsockname()[1]
        with subprocess.Popen(
            [sys.executable, *module("mailbox", "--port", str(port))],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        ) as proc:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"-ERR go\x1b[2J\raway\r\n")
                _, err = proc.communicate(timeout=20)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert "\x1b" not in err
    assert "go\\x1b[2J" in err


def test_ftp_password_never_from_argv(closed_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """No $FTP_PASSWORD and no terminal to prompt on: one line naming the variable, exit 1."""
    monkeypatch.delenv("FTP_PASSWORD", raising=False)
    result = run(module("ftp", "--server", f"127.0.0.1:{closed_port}", "--user", "bob"))
    line = assert_one_line(result, 1)
    assert "set $FTP_PASSWORD" in line
