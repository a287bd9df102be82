"""Multi-process workers: N copies of your servers sharing each port (SO_REUSEPORT).

The asyncio successor of ``socketserver.ForkingMixIn``: instead of one process per
connection, a small fixed number of worker processes, each running the servers on
its own event loop, with the kernel spreading connections (and UDP peers) over
them.  A supervisor process forks the workers, restarts one that dies (at a
bounded rate) and, on Ctrl-C or SIGTERM, stops them all gracefully and exits 0::

    from asyncnet import run_workers, tcp_server, udp_server

    run_workers(tcp_server(Upper, port=9999), udp_server(UpperDatagram, port=9999), workers=4)

Servers are embeddable objects, so forking must happen before any event loop runs:
``run_workers`` is for scripts, like :func:`asyncnet.run_servers`, and refuses to
run inside a running loop.  The server objects are built in the supervisor but
never started there; each worker starts its own copy after the fork.  With port 0
the first worker binds an ephemeral port and reports it, and the others bind that
same port.  POSIX only (``fork`` and ``SO_REUSEPORT``).

The module is one protocol between two kinds of process: the supervisor
(:class:`_Supervisor`: forks, watches the workers' pipes, restarts, stops) and the
worker (:func:`_worker_main`: binds, reports its addresses, serves until a signal or
until the supervisor is gone).  Which side blocks, forwards or reports a signal, and
when, is decided here for both, so the Ctrl-C races they close are read in one place
(and replayed in tests/test_workers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._runner import run_servers
from .errors import AsyncNetError, ConfigurationError, StateError
from .servers import ServerBase

__all__ = ["run_workers"]

logger = logging.getLogger("asyncnet._workers")

_STARTUP_TIMEOUT = 30.0
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@dataclass
class _Worker:
    index: int
    pid: int
    ready_fd: int
    """Read end of the pipe on which the worker reports its bound addresses."""
    control_fd: int
    """Write end of the worker's control pipe: b"r" = call ready(); EOF = supervisor gone."""
    announces: bool
    addresses: list[Any] | None = None
    buffer: bytes = b""


def _check_can_fork(servers: Sequence[ServerBase], workers: int) -> None:
    if workers < 1:
        raise ConfigurationError(f"workers must be >= 1, not {workers!r}")
    if not servers:
        raise ConfigurationError("run_workers() needs at least one server")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise StateError(
            "run_workers() forks worker processes: call it from a script before any "
            "event loop runs (inside a loop, use the servers with 'async with')"
        )
    if workers == 1:
        return
    if not hasattr(os, "fork") or not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigurationError("workers > 1 needs os.fork() and SO_REUSEPORT (POSIX)")
    for server in servers:
        if getattr(server, "path", None) is not None:
            raise ConfigurationError(
                f"{server.name}: a Unix socket cannot be shared by workers; use workers=1"
            )
        if server.is_serving:
            raise ConfigurationError(f"{server.name} is already started; pass it unstarted")


def _report_startup_error(ready_fd: int, exc: BaseException) -> bool:
    """Tell the supervisor why this worker could not start; False if it cannot be told."""
    number = getattr(exc, "errno", None)
    report = {"error": str(exc), "errno": number if isinstance(number, int) else None}
    try:
        os.write(ready_fd, json.dumps(report).encode() + b"\n")
    except OSError:  # already reported its addresses (and closed the pipe): not start-up
        return False
    return True


def _worker_main(
    servers: Sequence[ServerBase],
    ports: list[int] | None,
    ready_fd: int,
    control_fd: int,
    ready: Callable[[Sequence[ServerBase]], Any] | None,
    use_uvloop: bool | None,
) -> int:
    """Runs in a forked child: bind the shared ports, serve until a signal or orphaned."""
    for server in servers:
        server.reuse_port = True  # type: ignore[attr-defined]
    if ports is not None:
        for server, port in zip(servers, ports, strict=True):
            server.port = port  # type: ignore[attr-defined]

    def started(running: Sequence[ServerBase]) -> None:
        addresses = [list(s.address) for s in running]
        os.write(ready_fd, json.dumps(addresses).encode() + b"\n")
        os.close(ready_fd)

    async def until() -> None:
        # Only the supervisor holds the write end of the control pipe: it sends
        # b"r" once every worker serves (time for ready()), and EOF means it is gone
        # (even SIGKILLed): a worker must not outlive it.
        loop = asyncio.get_running_loop()
        orphaned = loop.create_future()

        def on_control() -> None:
            try:
                data = os.read(control_fd, 64)
            except BlockingIOError:
                return
            if not data:
                loop.remove_reader(control_fd)
                if not orphaned.done():
                    orphaned.set_result(None)
            elif ready is not None:
                ready(servers)

        os.set_blocking(control_fd, False)
        loop.add_reader(control_fd, on_control)
        # run_servers() handles SIGINT/SIGTERM by now (it ends this coroutine on one):
        # let the signals that were kept pending during start-up in
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        try:
            await orphaned
        finally:
            loop.remove_reader(control_fd)
            # Ctrl-C reaches the supervisor and every worker, and the supervisor then
            # sends SIGTERM: neither may cut the graceful shutdown that starts now
            # (the supervisor escalates to SIGKILL after its stop_timeout).  Ignoring
            # them is not enough: leaving run_servers() removes the loop's handlers,
            # which puts back SIG_DFL, and a SIGTERM arriving after that killed the
            # worker (-15).  Blocked, they stay pending until os._exit() drops them.
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    # The supervisor learns from `started` that this worker serves, and may send
    # SIGTERM at once: keep stop signals pending until the loop's handlers exist,
    # or the default action would kill the worker in the middle of its start.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    return run_servers(*servers, ready=started, until=until, use_uvloop=use_uvloop)


class _Supervisor:
    def __init__(
        self,
        servers: Sequence[ServerBase],
        workers: int,
        ready: Callable[[Sequence[ServerBase]], Any] | None,
        use_uvloop: bool | None,
        max_restarts: int,
        restart_window: float,
        stop_timeout: float,
    ) -> None:
        self.servers = servers
        self.count = workers
        self.ready = ready
        self.use_uvloop = use_uvloop
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.stop_timeout = stop_timeout
        self.workers: dict[int, _Worker] = {}  # by pid
        self.ports: list[int] | None = None
        self.restarts: deque[float] = deque()
        self.failed = False
        self.signalled = False
        self.signals: list[int] = []
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        self.announced = False
        self.startup_error: OSError | None = None

    # -- forking ----------------------------------------------------------------

    def spawn(self, index: int, *, first_incarnation: bool) -> _Worker:
        ready_r, ready_w = os.pipe()
        control_r, control_w = os.pipe()
        announces = index == 0 and first_incarnation
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                self._become_worker(ready_r, control_w)
                status = _worker_main(
                    self.servers,
                    self.ports,
                    ready_w,
                    control_r,
                    self.ready if announces else None,
                    self.use_uvloop,
                )
            except (OSError, AsyncNetError) as exc:
                # Expected at start-up (port in use, bad host): the supervisor raises
                # it in the caller's process, where a CLI prints it as one line.
                if not _report_startup_error(ready_w, exc):
                    logger.exception("worker %d failed", index)
                else:
                    logger.debug("worker %d failed", index, exc_info=exc)
            except BaseException:
                logger.exception("worker %d failed", index)
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(status)
        os.close(ready_w)
        os.close(control_r)
        os.set_blocking(ready_r, False)
        worker = _Worker(index, pid, ready_r, control_w, announces)
        self.workers[pid] = worker
        self.selector.register(ready_r, selectors.EVENT_READ, worker)
        logger.info("worker %d started (pid %d)", index, pid)
        return worker

    def _become_worker(self, ready_r: int, control_w: int) -> None:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        for fd in (ready_r, control_w, self.wake_r, self.wake_w):
            os.close(fd)
        for worker in self.workers.values():  # a sibling's pipes are not ours to hold
            os.close(worker.control_fd)
            if worker.ready_fd >= 0:
                os.close(worker.ready_fd)

    # -- the supervisor's loop --------------------------------------------------

    def run(self) -> int:
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        old_wakeup = signal.set_wakeup_fd(self.wake_w)
        old_handlers = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)
        }
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)
        try:
            return self._supervise()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in old_handlers.items():
                signal.signal(signum, handler)
            self.selector.close()
            for fd in (self.wake_r, self.wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)

    def _supervise(self) -> int:
        first = self.spawn(0, first_incarnation=True)
        if not self._wait_ready(first):
            status = self._stop_all()
            if self.startup_error is not None and not self.signalled:
                raise self.startup_error
            return status if self.signalled else 1
        for index in range(1, self.count):
            self.spawn(index, first_incarnation=True)
        while True:
            if not self._step(timeout=None):
                return self._stop_all()

    def _wait_ready(self, worker: _Worker) -> bool:
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while worker.addresses is None:
            left = deadline - time.monotonic()
            if left <= 0:
                logger.error("worker %d did not start within %g s", worker.index, _STARTUP_TIMEOUT)
                return False
            if not self._step(timeout=left):
                return False
            if worker.pid not in self.workers:
                logger.error("worker %d exited before it was serving", worker.index)
                return False
        return True

    def _step(self, timeout: float | None) -> bool:
        """Handle one round of events; False when the supervisor must stop."""
        for key, _ in self.selector.select(timeout):
            if key.data is None:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 512)
            else:
                self._read_ready_line(key.data)
        signals, self.signals = self.signals, []
        if any(s in (signal.SIGINT, signal.SIGTERM) for s in signals):
            self.signalled = True
            logger.info("supervisor: stopping %d workers", len(self.workers))
            return False
        if not self._reap():
            return False
        if (
            not self.announced
            and len(self.workers) == self.count
            and all(w.addresses is not None for w in self.workers.values())
        ):
            self._announce()
        return True

    def _announce(self) -> None:
        """Every worker serves: have the first one call ready()."""
        self.announced = True
        logger.info("supervisor: %d workers on ports %s", self.count, self.ports)
        for worker in self.workers.values():
            if worker.announces:
                with contextlib.suppress(OSError):
                    os.write(worker.control_fd, b"r")

    def _read_ready_line(self, worker: _Worker) -> None:
        try:
            chunk = os.read(worker.ready_fd, 4096)
        except BlockingIOError:
            return
        if chunk:
            worker.buffer += chunk
            if b"\n" not in worker.buffer:
                return
            report = json.loads(worker.buffer.split(b"\n", 1)[0])
            if isinstance(report, dict):  # the worker could not start: see _worker_main
                self.startup_error = OSError(report.get("errno"), report["error"])
                return
            worker.addresses = report
            if self.ports is None:
                self.ports = [int(address[1]) for address in worker.addresses or []]
            logger.info("worker %d (pid %d) serving", worker.index, worker.pid)
        self.selector.unregister(worker.ready_fd)
        os.close(worker.ready_fd)
        worker.ready_fd = -1

    def _reap(self) -> bool:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return True
            if pid == 0:
                return True
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            self._forget(worker)
            code = os.waitstatus_to_exitcode(status)
            if self.ports is None:
                return False  # the first worker died before binding: nothing to restart
            if not self._may_restart():
                logger.error(
                    "worker %d (pid %d) exited with %d; more than %d restarts in %g s, giving up",
                    worker.index,
                    pid,
                    code,
                    self.max_restarts,
                    self.restart_window,
                )
                self.failed = True
                return False
            logger.warning("worker %d (pid %d) exited with %d; restarted", worker.index, pid, code)
            self.spawn(worker.index, first_incarnation=False)
        return True

    def _forget(self, worker: _Worker) -> None:
        os.close(worker.control_fd)
        if worker.ready_fd >= 0:
            self.selector.unregister(worker.ready_fd)
            os.close(worker.ready_fd)
            worker.ready_fd = -1

    def _may_restart(self) -> bool:
        now = time.monotonic()
        while self.restarts and now - self.restarts[0] > self.restart_window:
            self.restarts.popleft()
        if len(self.restarts) >= self.max_restarts:
            return False
        self.restarts.append(now)
        return True

    def _stop_all(self) -> int:
        """SIGTERM every worker (each shuts down gracefully), SIGKILL stragglers."""
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        hurried = False
        while self.workers and time.monotonic() < deadline:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                self.selector.select(min(0.05, max(0.0, deadline - time.monotonic())))
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 512)
                if any(s in (signal.SIGINT, signal.SIGTERM) for s in self.signals):
                    # A second Ctrl-C (or SIGTERM) during the graceful stop: stop now.
                    logger.warning(
                        "supervisor: signalled again, killing %d workers", len(self.workers)
                    )
                    hurried = True
                    break
                continue
            worker = self.workers.pop(pid, None)
            if worker is not None:
                self._forget(worker)
            if worker is not None and os.waitstatus_to_exitcode(status) != 0:
                logger.warning(
                    "worker %d (pid %d) exited with %d",
                    worker.index,
                    pid,
                    os.waitstatus_to_exitcode(status),
                )
        for pid in list(self.workers):
            if not hurried:
                logger.error(
                    "worker pid %d did not stop in %g s; killing it", pid, self.stop_timeout
                )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self._forget(self.workers.pop(pid))
        if hurried:
            return 130  # as an interrupted program's shell status
        return 1 if self.failed or (self.ports is None and not self.signalled) else 0


def run_workers(
    *servers: ServerBase,
    workers: int = 2,
    ready: Callable[[Sequence[ServerBase]], Any] | None = None,
    use_uvloop: bool | None = None,
    max_restarts: int = 5,
    restart_window: float = 60.0,
    stop_timeout: float = 30.0,
) -> int:
    """Serve ``servers`` in ``workers`` processes sharing their ports; return the exit status.

    ``workers=1`` runs in this process, exactly like :func:`asyncnet.run_servers`.
    With more, each worker binds every server with ``SO_REUSEPORT``; ``ready`` is
    called once, in the first worker, when every worker is serving (a restarted
    worker does not call it again).  A worker that exits or is killed is
    restarted, at most ``max_restarts`` times in any ``restart_window`` seconds;
    beyond that the supervisor stops everything and returns 1.  SIGINT/SIGTERM stop
    every worker gracefully (each server's ``grace``; SIGKILL after
    ``stop_timeout``) and return 0; a second signal during that stop kills them at
    once and returns 130.  If the supervisor itself dies, its workers notice and stop.
    """
    _check_can_fork(servers, workers)
    if workers == 1:
        return run_servers(*servers, ready=ready, use_uvloop=use_uvloop)
    supervisor = _Supervisor(
        servers, workers, ready, use_uvloop, max_restarts, restart_window, stop_timeout
    )
    return supervisor.run()
