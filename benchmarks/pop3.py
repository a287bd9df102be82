"""``python -m benchmarks.pop3``: a whole mailbox over POP3 at a round-trip time.

    python -m benchmarks.pop3                 # 21 messages of 20 KB at 20 ms, 5 rounds: ~15 s
    python -m benchmarks.pop3 --rtt 0,20,100  # other round-trip times (ms)

asyncnet's POP3 server (``LocalMailServer``, which announces PIPELINING) serves one
Maildir in a process of its own, and a delaying proxy (:mod:`benchmarks.latency`,
RTT/2 each way, the TCP handshake included) sits in front of it in another.  Each
round reads the whole mailbox three ways, in an order that rotates from round to
round so that whatever else the machine does falls on all of them:

* ``poplib``: connect, USER, PASS, LIST, RETR each message, QUIT; one command per
  round trip, as the tutorial's client does;
* ``asyncnet, one at a time``: ``POP3Client``, ``login()``, ``list()``, ``retr()``
  each message, QUIT;
* ``asyncnet, pipelined``: the same with ``retr_many()`` (up to 8 RETRs on the wire).

The clock runs from before the connection to after QUIT; every message is checked
against what was stored (sha256), off the clock.  The target, at 20 ms: the
pipelined read at least 2x faster than poplib.

Then what a big message costs the server (``--no-memory`` skips it): the POP3
server's peak resident size, in a process of its own (:mod:`benchmarks.mail_server`),
while poplib RETRs a 12 MB message (target: under 4 MiB of growth, the message is
streamed from the Maildir), and 100 sessions at once, each RETRing 256 KiB (target:
every one served, byte-exact).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import poplib
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from .paths import PACKAGE_PARENT, python_path

__all__ = [
    "MODES",
    "TARGET",
    "Result",
    "big_message",
    "main",
    "make_messages",
    "measure_memory",
    "measure_sessions",
    "run",
    "table",
]

USER, PASSWORD = "demo", "demo"
TARGET = ("asyncnet, pipelined", 20.0, 2.0)
"""(mode, RTT in ms, how many times faster than poplib it must be there)."""
MiB = 1024 * 1024
BIG_MESSAGE = 12_000_000
GROWTH_LIMIT = 4 * MiB
"""The most the server may grow by while it serves :data:`BIG_MESSAGE` bytes."""
SESSIONS, SESSION_MESSAGE = 100, 256 * 1024
MODES = ("poplib", "asyncnet, one at a time", "asyncnet, pipelined")


class BenchError(Exception):
    """What stops the benchmark (a server that did not start, a message that came back
    different): one line for the user."""


def make_messages(count: int, size: int, seed: int = 1) -> list[bytes]:
    """``count`` messages of about ``size`` bytes (CRLF lines, some starting with a dot)."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", ".dot", "..two", "epsilon", "zeta"]
    messages = []
    for n in range(1, count + 1):
        head = f"From: bench@localhost\r\nTo: demo@localhost\r\nSubject: message {n}\r\n\r\n"
        body: list[str] = []
        length = len(head)
        while length < size:
            line = " ".join(rng.choice(words) for _ in range(10))
            body.append(line)
            length += len(line) + 2
        messages.append((head + "\r\n".join(body) + "\r\n").encode())
    return messages


def big_message(size: int) -> bytes:
    """A message of at least ``size`` bytes, cheap to build (a repeated body)."""
    head = b"From: bench@localhost\r\nTo: demo@localhost\r\nSubject: big\r\n\r\n"
    unit = b"alpha beta gamma delta epsilon zeta eta theta iota kappa\r\n.a stuffed line\r\n"
    return head + unit * (max(size - len(head), 0) // len(unit) + 1)


@dataclass
class Result:
    """Seconds per mode and RTT, over the rounds; everything ``table`` needs."""

    messages: int
    message_bytes: int
    rounds: int
    loop: str
    seconds: dict[str, list[float]] = field(default_factory=dict)
    memory: dict[str, int] | None = None
    """The big-message RETR: ``message_bytes``, the server's ``growth_bytes``."""
    sessions: dict[str, float] | None = None
    """Sessions at once: ``sessions``, ``served`` (byte-exact), ``seconds``."""

    def median(self, mode: str, rtt_ms: float) -> float:
        return statistics.median(self.seconds[f"{rtt_ms:g} {mode}"])


class _Process:
    """A child that prints one line when ready and runs until its stdin closes."""

    def __init__(self, argv: list[str], what: str) -> None:
        env = {**os.environ, "PYTHONPATH": python_path()}
        # A file, not a pipe: a pipe nobody reads could fill up.  Closed by stop().
        self._errors = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            text=True,
            cwd=PACKAGE_PARENT,
            env=env,
        )
        assert self.proc.stdout is not None
        self.line = self.proc.stdout.readline().strip()
        if not self.line:
            error = self.stop()
            raise BenchError(f"{what} did not start: {error.strip()[-300:]}")

    def stop(self) -> str:
        """Close its stdin, wait (kill after 10 s); what it wrote to stderr."""
        stdin: IO[str] | None = self.proc.stdin
        if stdin is not None and not stdin.closed:
            stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._errors.seek(0)
        error = self._errors.read()
        self._errors.close()
        return error


def _read_with_poplib(port: int, expected: dict[int, str]) -> float:
    started = time.perf_counter()
    pop = poplib.POP3("127.0.0.1", port, timeout=30)
    pop.user(USER)
    pop.pass_(PASSWORD)
    _, listing, _ = pop.list()
    got = {}
    for entry in listing:
        number = int(entry.split()[0])
        _, lines, _ = pop.retr(number)
        got[number] = b"\r\n".join(lines) + b"\r\n"
    pop.quit()
    elapsed = time.perf_counter() - started
    _check(got, expected, "poplib")
    return elapsed


async def _read_with_asyncnet(port: int, expected: dict[int, str], pipelined: bool) -> float:
    from asyncnet.mail import POP3Client

    started = time.perf_counter()
    got = {}
    async with POP3Client("127.0.0.1", port) as pop:
        await pop.login(USER, PASSWORD)
        numbers = list(await pop.list())
        if pipelined:
            async for number, message in pop.retr_many(numbers):
                got[number] = message
        else:
            for number in numbers:
                got[number] = await pop.retr(number)
    elapsed = time.perf_counter() - started
    _check(got, expected, "asyncnet")
    return elapsed


def _retr_with_poplib(port: int, number: int) -> bytes:
    pop = poplib.POP3("127.0.0.1", port, timeout=60)
    try:
        pop.user(USER)
        pop.pass_(PASSWORD)
        _, lines, _ = pop.retr(number)
        pop.quit()
    finally:
        pop.close()
    return b"\r\n".join(lines) + b"\r\n"


def measure_memory(size: int = BIG_MESSAGE) -> dict[str, int]:
    """The POP3 server's peak RSS growth while poplib RETRs a ``size``-byte message.

    The server runs in a process of its own and serves one warm-up RETR first (the
    first session imports and allocates what every session needs); then its peak is
    reset (``/proc/self/clear_refs``) and read again after the big RETR.
    """
    from asyncnet.mail import Maildirs

    from .mail_server import measured

    message, warm = big_message(size), make_messages(1, 2000)[0]
    with tempfile.TemporaryDirectory(prefix="asyncnet-pop3-memory-") as scratch:
        maildirs = Maildirs(scratch, [USER])
        maildirs.deliver_now(USER, message)  # number 1: messages are numbered oldest first
        maildirs.deliver_now(USER, warm)
        with measured("pop3", Path(scratch), USER, PASSWORD) as (port, ask):
            if _retr_with_poplib(port, 2) != warm:
                raise BenchError("the warm-up message came back different")
            before = ask("mark")
            got = _retr_with_poplib(port, 1)
            growth = ask("peak") - before
    if hashlib.sha256(got).digest() != hashlib.sha256(message).digest():
        raise BenchError("the big message came back different")
    return {"message_bytes": len(message), "growth_bytes": growth}


async def measure_sessions(count: int = SESSIONS, size: int = SESSION_MESSAGE) -> dict[str, float]:
    """``count`` users, each RETRing ``size`` bytes, all at once against one POP3 server."""
    from asyncnet.mail import Maildirs, PasswordAuthenticator, POP3Client, POP3Server

    users = {f"user{n}": f"secret{n}" for n in range(count)}
    message = big_message(size)
    expected = hashlib.sha256(message).hexdigest()

    async def session(port: int, user: str) -> bool:
        digest = hashlib.sha256()
        async with POP3Client("127.0.0.1", port) as pop:
            await pop.login(user, users[user])
            await pop.retr_to(1, digest.update)
        return digest.hexdigest() == expected

    with tempfile.TemporaryDirectory(prefix="asyncnet-pop3-sessions-") as scratch:
        maildirs = Maildirs(scratch, list(users))
        for user in users:
            maildirs.deliver_now(user, message)
        auth = PasswordAuthenticator(users)
        async with POP3Server(maildirs, auth, host="127.0.0.1", port=0) as server:
            port = server.address[1]
            started = time.perf_counter()
            async with asyncio.timeout(120):
                done = await asyncio.gather(
                    *(session(port, user) for user in users), return_exceptions=True
                )
            seconds = time.perf_counter() - started
    return {"sessions": count, "served": sum(ok is True for ok in done), "seconds": seconds}


def _check(got: dict[int, bytes], expected: dict[int, str], who: str) -> None:
    digests = {n: hashlib.sha256(m).hexdigest() for n, m in got.items()}
    if sorted(digests.values()) != sorted(expected.values()):
        raise BenchError(f"{who} read back messages that differ from those stored")


def _measure(
    runner: asyncio.Runner, port: int, expected: dict[int, str], rtt: float, result: Result
) -> None:
    """``result.rounds`` interleaved rounds of every mode through the proxy at ``port``."""
    measures: dict[str, Callable[[], float]] = {
        MODES[0]: lambda: _read_with_poplib(port, expected),
        MODES[1]: lambda: runner.run(_read_with_asyncnet(port, expected, False)),
        MODES[2]: lambda: runner.run(_read_with_asyncnet(port, expected, True)),
    }
    for measure in measures.values():  # untimed: imports, the server's first reads
        measure()
    rows = list(measures.items())
    for round_ in range(result.rounds):
        shift = round_ % len(rows)
        for mode, measure in rows[shift:] + rows[:shift]:
            result.seconds.setdefault(f"{rtt:g} {mode}", []).append(measure())


def run(
    rtts_ms: Sequence[float], rounds: int, count: int, size: int, *, memory: bool = True
) -> Result:
    """Seed a Maildir, start the server and a proxy per RTT, measure every mode; then,
    with ``memory``, what a big message and many sessions cost the server."""
    from asyncnet._runner import loop_factory
    from asyncnet.mail import Maildirs

    from .mail_server import measured

    factory = loop_factory()
    messages = make_messages(count, size)
    expected = {n: hashlib.sha256(m).hexdigest() for n, m in enumerate(messages, 1)}
    result = Result(count, size, rounds, "uvloop" if factory else "asyncio")
    with tempfile.TemporaryDirectory(prefix="asyncnet-pop3-bench-") as scratch:
        maildirs = Maildirs(scratch, [USER])
        for message in messages:
            maildirs.deliver_now(USER, message)
        with (
            measured("pop3", Path(scratch), USER, PASSWORD) as (port, _),
            asyncio.Runner(loop_factory=factory) as runner,
        ):
            for rtt in rtts_ms:
                proxy = _Process(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.latency",
                        "--rtt",
                        f"{rtt:g}",
                        "--ports",
                        json.dumps({"pop3": port}),
                    ],
                    "the delaying proxy",
                )
                try:
                    through = int(json.loads(proxy.line)["pop3"])
                    _measure(runner, through, expected, rtt, result)
                finally:
                    proxy.stop()
            if memory:
                result.sessions = runner.run(measure_sessions())
    if memory:
        result.memory = measure_memory()
    return result


def table(result: Result) -> str:
    """The Markdown table of median wall times, with the target met or missed."""
    rtts = sorted({float(key.split(" ", 1)[0]) for key in result.seconds})
    lines = [
        f"POP3, a whole mailbox: {result.messages} messages of about "
        f"{result.message_bytes // 1000} KB from asyncnet's POP3 server through a delaying "
        f"proxy, median of {result.rounds} interleaved rounds, asyncnet on {result.loop}",
        "",
        "| RTT ms | client | wall ms | vs poplib |",
        "|---:|---|---:|---:|",
    ]
    for rtt in rtts:
        base = result.median("poplib", rtt)
        for mode in MODES:
            seconds = result.median(mode, rtt)
            lines.append(f"| {rtt:g} | {mode} | {seconds * 1e3:.0f} | {base / seconds:.2f}x |")
    mode, at, goal = TARGET
    lines.append("")
    if at in rtts:
        ratio = result.median("poplib", at) / result.median(mode, at)
        verdict = "met" if ratio >= goal else "MISSED"
        lines.append(f"- {mode} vs poplib at {at:g} ms: >= {goal:g}x: {ratio:.2f}x, {verdict}")
    else:
        lines.append(f"- {mode} vs poplib at {at:g} ms: not measured (add {at:g} to --rtt)")
    if result.memory is not None:
        growth = result.memory["growth_bytes"]
        verdict = "met" if growth < GROWTH_LIMIT else "MISSED"
        lines.append(
            f"- server peak RSS growth during a {result.memory['message_bytes'] / 1e6:.0f} MB "
            f"RETR (poplib): {growth / MiB:.2f} MiB: < {GROWTH_LIMIT // MiB} MiB, {verdict}"
        )
    if result.sessions is not None:
        count, served = int(result.sessions["sessions"]), int(result.sessions["served"])
        verdict = "met" if served == count else "MISSED"
        lines.append(
            f"- {count} sessions at once, a {SESSION_MESSAGE // 1024} KiB RETR each: "
            f"{served}/{count} served byte-exact in {result.sessions['seconds']:.2f} s: "
            f"all, {verdict}"
        )
    return "\n".join(lines)


def _rtts(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"wants milliseconds such as 0,20,100, not {text!r}"
        ) from None
    if not values or not all(0 <= value <= 2000 for value in values):
        raise argparse.ArgumentTypeError(f"wants round-trip times from 0 to 2000 ms, not {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pop3",
        description="A whole mailbox over POP3 at a round-trip time: poplib against "
        "asyncnet's client, one command at a time and pipelined.",
    )
    parser.add_argument("--rtt", type=_rtts, default=[20.0], help="round-trip times in ms (20)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--messages", type=int, default=21, help="messages (default 21)")
    parser.add_argument(
        "--size", type=int, default=20_000, help="bytes per message (default 20000)"
    )
    parser.add_argument(
        "--no-memory",
        action="store_true",
        help="skip the 12 MB RETR (server RSS) and the 100 sessions at once",
    )
    parser.add_argument("--json", type=Path, help="also write the raw seconds to this file")
    args = parser.parse_args(argv)
    for name in ("rounds", "messages", "size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    # The server's peak is read from /proc (Linux only).
    memory = not args.no_memory and sys.platform.startswith("linux")
    try:
        result = run(args.rtt, args.rounds, args.messages, args.size, memory=memory)
    except (BenchError, OSError, RuntimeError, poplib.error_proto) as exc:
        print(f"pop3 benchmark: {exc}", file=sys.stderr)
        return 1
    print(table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(result), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
