"""Inherited listening sockets: StreamServer(sock=...) and systemd's LISTEN_FDS protocol."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from asyncnet import ConfigurationError, LineClient, StreamServer
from asyncnet.demos.upper import Upper
from asyncnet.servers import named_sockets_from_systemd, sockets_from_systemd

from .helpers import ROOT, read_listening_line


async def test_server_on_an_already_bound_socket() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    address = sock.getsockname()
    async with StreamServer(Upper, sock=sock) as server:
        assert server.address == address
        async with await LineClient.connect(*address) as client:
            assert await client.request("inherited") == "INHERITED"


async def test_server_on_an_inherited_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "upper.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    async with StreamServer(Upper, sock=sock) as server:
        assert server.address == path
        reader, writer = await asyncio.open_unix_connection(path)
        async with asyncio.timeout(5):
            writer.write(b"unix\n")
            assert await reader.readline() == b"UNIX\n"
        writer.close()
        await writer.wait_closed()


def test_a_datagram_socket_is_refused() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        pytest.raises(ConfigurationError, match="SOCK_STREAM"),
    ):
        StreamServer(Upper, sock=udp)


def test_no_sockets_without_listen_fds() -> None:
    assert sockets_from_systemd(environ={}) == []
    assert named_sockets_from_systemd(environ={}) == {}


def test_sockets_for_another_process_are_left_alone() -> None:
    environ = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "2"}
    assert sockets_from_systemd(environ=environ) == []
    assert environ == {}  # unset, so that children do not take them either


def test_environment_kept_on_request() -> None:
    environ = {"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "web"}
    assert sockets_from_systemd(environ=environ, unset_environment=False) == []
    assert environ["LISTEN_FDS"] == "1"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LISTEN_PID": "self", "LISTEN_FDS": "1"}, "not numbers"),
        ({"LISTEN_PID": "{pid}", "LISTEN_FDS": "two"}, "not numbers"),
        ({"LISTEN_PID": "{pid}", "LISTEN_FDS": "-1"}, "negative"),
        ({"LISTEN_PID": "{pid}", "LISTEN_FDS": "0", "LISTEN_FDNAMES": "a:b"}, "names 2"),
    ],
)
def test_bad_listen_variables_are_configuration_errors(
    environ: dict[str, str], message: str
) -> None:
    environ = {k: v.format(pid=os.getpid()) for k, v in environ.items()}
    with pytest.raises(ConfigurationError, match=message):
        sockets_from_systemd(environ=environ)


# A stand-in for systemd: put the socket at fd 3, set LISTEN_PID to the pid that
# exec() keeps, and run the demo.
SYSTEMD = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); "
    "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', LISTEN_FDNAMES='upper'); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
)


DEMO = ["-m", "asyncnet.demos.upper", "--systemd", "--port", "0"]


def start_activated(sock: socket.socket) -> subprocess.Popen[str]:
    fd = sock.fileno()
    return subprocess.Popen(
        [sys.executable, "-c", SYSTEMD, str(fd), *DEMO],
        pass_fds=(fd,),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


@pytest.mark.slow
def test_socket_activation_restart_never_refuses_a_connection() -> None:
    """The socket outlives the service: a client connecting mid-restart waits, then is served."""
    listener = socket.create_server(("127.0.0.1", 0))
    address = listener.getsockname()
    pattern = rf"tcp://127\.0\.0\.1:{address[1]} "
    procs = []
    try:
        first = start_activated(listener)
        procs.append(first)
        read_listening_line(first, pattern)
        with socket.create_connection(address, timeout=5) as sock:
            sock.sendall(b"first\n")
            assert sock.recv(100) == b"FIRST\n"
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=10) == 0
        # No process serves now, but the kernel still listens: the connect succeeds.
        with socket.create_connection(address, timeout=5) as waiting:
            waiting.sendall(b"during the restart\n")
            second = start_activated(listener)
            procs.append(second)
            read_listening_line(second, pattern)
            waiting.settimeout(10)
            assert waiting.recv(100) == b"DURING THE RESTART\n"
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=10) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)
        listener.close()


def test_upper_systemd_flag_without_sockets_says_what_to_do() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    done = subprocess.run(
        [sys.executable, "-m", "asyncnet.demos.upper", "--systemd", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "upper: no socket from systemd (LISTEN_FDS unset); run without --systemd"
    ]
    assert "Traceback" not in done.stderr
