"""The upper demo and the tour as real processes: ports from stdout, SIGINT, exit 0."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest

from .helpers import ROOT, read_listening_line, spawn

pytestmark = pytest.mark.slow

LISTENING = r"tcp://127\.0\.0\.1:(\d+) and udp://127\.0\.0\.1:(\d+)"


def test_upper_demo_serves_then_exits_zero_on_sigint() -> None:
    with spawn(["-m", "asyncnet.demos.upper", "--port", "0"]) as proc:
        match = read_listening_line(proc, LISTENING)
        tcp_port, udp_port = int(match[1]), int(match[2])
        with socket.create_connection(("127.0.0.1", tcp_port), timeout=5) as sock:
            stream = sock.makefile("rwb")
            stream.write(b"hello from a blocking client\n")
            stream.flush()
            assert stream.readline() == b"HELLO FROM A BLOCKING CLIENT\n"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(5)
            udp.sendto(b"datagram", ("127.0.0.1", udp_port))
            assert udp.recvfrom(1024)[0] == b"DATAGRAM"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_upper_demo_exits_zero_on_sigterm_with_a_client_connected() -> None:
    with spawn(["-m", "asyncnet.demos.upper", "--port", "0"]) as proc:
        tcp_port = int(read_listening_line(proc, LISTENING)[1])
        with socket.create_connection(("127.0.0.1", tcp_port), timeout=5) as sock:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert sock.recv(10) == b""  # the idle client was closed, not left hanging


def test_upper_client_subprocess_against_demo_server() -> None:
    with spawn(["-m", "asyncnet.demos.upper", "--port", "0"]) as server:
        tcp_port, udp_port = (int(g) for g in read_listening_line(server, LISTENING).groups())
        done = subprocess.run(
            [sys.executable, "-m", "asyncnet.demos.upper", "--client", "--port", str(tcp_port)],
            input="one\ntwo\n\nnot sent\n",
            capture_output=True,
            text=True,
            timeout=20,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["ONE", "TWO"]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "asyncnet.demos.upper",
                "--client",
                "--udp",
                "--port",
                str(udp_port),
            ],
            input="over udp\n",
            capture_output=True,
            text=True,
            timeout=20,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["OVER UDP"]
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=10) == 0


def test_udp_client_says_clearly_when_no_server_answers() -> None:
    """Nothing listens, so it says "port unreachable" at once (no retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "asyncnet.demos.upper",
            "--client",
            "--udp",
            "--port",
            str(port),
            "--timeout",
            "0.1",
            "--retries",
            "1",
        ],
        input="anyone there?\n",
        capture_output=True,
        text=True,
        timeout=20,
        cwd=ROOT,
    )
    assert done.returncode == 1
    assert "port unreachable" in done.stderr
    assert f"127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_tour_prints_the_exchange() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "asyncnet.demos.tour"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "< HELLO, WORLD" in done.stdout
    assert "< b'SPAM AND EGGS'" in done.stdout
