"""Multi-process workers (asyncnet._workers): shared ports, restart, clean shutdown.

Each test runs a small script (written to tmp_path) in a subprocess and talks to
it over loopback; readiness comes from the line the script prints, and process
exits are awaited with pidfds or ``wait()``, never with sleeps.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from asyncnet import run_workers, tcp_server, unix_server
from asyncnet.demos.upper import Upper
from asyncnet.errors import ConfigurationError
from benchmarks.procstat import descendants

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT"),
    pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfd_open (Linux)"),
]

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import os, signal, sys
from asyncnet import DatagramHandler, LineHandler, tcp_server, udp_server
from asyncnet._runner import configure_logging
from asyncnet._workers import run_workers

MARKER = {marker!r}


class Pid(LineHandler):
    def handle_line(self, line):
        return f"{{os.getpid()}} {{line.upper()}}"


class PidDatagram(DatagramHandler):
    def setup(self):
        if MARKER:
            if os.path.exists(MARKER):
                os._exit(3)  # every worker after the first crashes at start
            open(MARKER, "w").close()

    def handle(self, data, addr):
        return b"%d " % os.getpid() + data.upper()


def ready(servers):
    print("ready", *(s.address[1] for s in servers), flush=True)


configure_logging(1)
sys.exit(
    run_workers(
        tcp_server(Pid, port=0, grace=1.0),
        udp_server(PidDatagram, port=0),
        workers={workers},
        ready=ready,
        max_restarts={max_restarts},
        stop_timeout=10,
    )
)
"""


@contextmanager
def supervisor(
    tmp_path: Path,
    workers: int = 2,
    *,
    crash: bool = False,
    max_restarts: int = 5,
    stdlib_loop: bool = False,
) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """Run the script; yield (process, tcp port, udp port) once it printed 'ready'
    (with ``crash``, at once, with ports 0: that script never becomes ready)."""
    marker = str(tmp_path / "first-worker-started") if crash else ""
    script = tmp_path / "workers_script.py"
    script.write_text(
        textwrap.dedent(SCRIPT).format(marker=marker, workers=workers, max_restarts=max_restarts)
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "ASYNCNET_NO_UVLOOP": "1"} if stdlib_loop else None,
        start_new_session=True,  # Ctrl-C is simulated by signalling the whole group
    )
    try:
        assert proc.stdout is not None
        if crash:
            yield proc, 0, 0
            return
        line = proc.stdout.readline()
        assert line.startswith("ready "), (line, proc.stderr.read() if proc.stderr else "")
        _, tcp, udp = line.split()
        yield proc, int(tcp), int(udp)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def ask_tcp(port: int, text: str = "hi") -> tuple[int, str]:
    """One connection, one line; return (worker pid, reply)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(text.encode() + b"\n")
        reply = sock.makefile("rb").readline().decode().strip()
    pid, _, upper = reply.partition(" ")
    return int(pid), upper


def ask_udp(port: int, text: bytes = b"hi") -> tuple[int, bytes]:
    """One datagram from a fresh socket (so the kernel may pick another worker)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(text, ("127.0.0.1", port))
        reply = sock.recv(1024)
    pid, _, upper = reply.partition(b" ")
    return int(pid), upper


def pids_serving(port: int, want: int, tries: int = 200) -> set[int]:
    """Connect until ``want`` distinct workers answered (bounded by ``tries``)."""
    seen: set[int] = set()
    for _ in range(tries):
        pid, upper = ask_tcp(port)
        assert upper == "HI"
        seen.add(pid)
        if len(seen) >= want:
            break
    return seen


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    """Wait (pidfds, no sleeping) until the processes exit; return those still alive."""
    fds = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            continue
    alive = set(fds.values())
    try:
        deadline = timeout
        while fds and deadline > 0:
            ready, _, _ = select.select(list(fds), [], [], deadline)
            if not ready:
                break
            for fd in ready:
                alive.discard(fds.pop(fd))
                os.close(fd)
    finally:
        for fd in fds:
            os.close(fd)
    return alive


def worker_pids(proc: subprocess.Popen[str]) -> set[int]:
    return set(descendants(proc.pid))


def test_two_workers_share_the_tcp_and_udp_ports(tmp_path: Path) -> None:
    """Connections and datagrams are spread over both workers, on the same ports."""
    with supervisor(tmp_path) as (proc, tcp, udp):
        workers = worker_pids(proc)
        assert len(workers) == 2
        assert pids_serving(tcp, want=2) == workers
        seen: set[int] = set()
        for _ in range(200):
            pid, upper = ask_udp(udp)
            assert upper == b"HI"
            seen.add(pid)
            if seen == workers:
                break
        assert seen == workers
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


@pytest.mark.parametrize("stdlib_loop", [False, True], ids=["default-loop", "stdlib-loop"])
def test_sigterm_stops_every_worker_and_exits_zero(tmp_path: Path, stdlib_loop: bool) -> None:
    """SIGTERM: the workers shut down gracefully, nothing is left behind, status 0."""
    with supervisor(tmp_path, stdlib_loop=stdlib_loop) as (proc, tcp, _):
        workers = worker_pids(proc)
        with socket.create_connection(("127.0.0.1", tcp), timeout=5) as idle:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
            assert idle.recv(10) == b""  # the idle client was closed by its worker
        assert wait_gone(workers, timeout=5) == set()
        assert proc.stderr is not None
        log = proc.stderr.read()
        assert "exited with" not in log, log  # every worker exited 0 on its own


def test_ctrl_c_to_the_process_group_exits_zero(tmp_path: Path) -> None:
    """Ctrl-C reaches the supervisor and every worker at once: still a clean exit 0."""
    with supervisor(tmp_path) as (proc, tcp, _):
        workers = worker_pids(proc)
        assert ask_tcp(tcp)[1] == "HI"
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert wait_gone(workers, timeout=5) == set()
        assert proc.stderr is not None
        assert "exited with" not in proc.stderr.read()


def test_a_killed_worker_is_restarted(tmp_path: Path) -> None:
    """A worker that dies is replaced; the port keeps being served throughout."""
    with supervisor(tmp_path) as (proc, tcp, _):
        before = worker_pids(proc)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        assert proc.stderr is not None
        for line in proc.stderr:  # bounded: the supervisor logs the restart at once
            if "restarted" in line:
                assert f"pid {victim}" in line
                break
        for line in proc.stderr:
            if "serving" in line:  # the replacement has bound the shared ports
                break
        after = worker_pids(proc)
        assert victim not in after
        assert len(after) == 2
        assert pids_serving(tcp, want=2) == after
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_a_crash_loop_is_bounded(tmp_path: Path) -> None:
    """Workers that die at start are restarted at most max_restarts times, then status 1."""
    with supervisor(tmp_path, crash=True, max_restarts=3) as (proc, _, _):
        assert proc.wait(timeout=30) == 1
        assert proc.stderr is not None
        log = proc.stderr.read()
        assert log.count("restarted") == 3, log
        assert "giving up" in log
        assert proc.stdout is not None
        assert proc.stdout.read() == ""  # ready() is only called once every worker serves


def test_workers_exit_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """Even SIGKILL of the supervisor leaves no orphan workers serving the port."""
    with supervisor(tmp_path) as (proc, _, _):
        workers = worker_pids(proc)
        assert len(workers) == 2
        proc.kill()
        assert proc.wait(timeout=5) == -signal.SIGKILL
        assert wait_gone(workers, timeout=15) == set()


async def test_run_workers_refuses_to_fork_inside_a_running_loop() -> None:
    with pytest.raises(RuntimeError, match="before any event loop runs"):
        run_workers(tcp_server(Upper), workers=2)


def test_run_workers_refuses_a_shared_unix_socket(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="Unix socket"):
        run_workers(unix_server(Upper, str(tmp_path / "s")), workers=2)


def test_run_workers_checks_its_arguments() -> None:
    with pytest.raises(ConfigurationError, match="workers must be >= 1"):
        run_workers(tcp_server(Upper), workers=0)
    with pytest.raises(ConfigurationError, match="at least one server"):
        run_workers(workers=2)


RACE = """
import os, signal, sys
from asyncnet import run_servers, tcp_server
from asyncnet.demos.upper import Upper

# A client (or a supervisor) may signal as soon as the ready line is out.
sys.exit(run_servers(tcp_server(Upper), ready=lambda s: os.kill(os.getpid(), signal.SIGTERM)))
"""


def test_run_servers_handles_a_signal_sent_as_soon_as_it_is_ready() -> None:
    """A SIGTERM sent the moment the ready line is out stops the server gracefully
    (status 0), which is what a supervisor, or a test, relies on."""
    done = subprocess.run(
        [sys.executable, "-c", RACE], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr


def test_loop_is_not_left_running_by_the_refusal() -> None:
    """run_workers() in a script after asyncio.run() has finished is fine (no loop runs)."""
    asyncio.run(asyncio.sleep(0))
    with pytest.raises(ConfigurationError):
        run_workers(tcp_server(Upper), workers=-1)
