"""The POP3 benchmark (benchmarks.pop3): it runs end to end, reads what was stored, and
judges its target.  No speed is asserted: the table's numbers come from a real run
over loopback (asyncnet's POP3 server and the delaying proxy in processes of their own).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.pop3 import MODES, Result, big_message, make_messages, table

ROOT = Path(__file__).resolve().parents[1]


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.pop3", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_messages_have_the_size_asked_and_lines_that_need_dot_stuffing() -> None:
    messages = make_messages(5, 4000)
    assert len(messages) == 5
    assert all(4000 <= len(m) < 4200 for m in messages)
    assert all(m.endswith(b"\r\n") and b"\n" not in m.replace(b"\r\n", b"") for m in messages)
    assert any(b"\r\n." in m for m in messages)  # RETR must stuff, the clients unstuff
    assert make_messages(5, 4000) == messages  # the same mailbox every run


def _result(poplib_s: float, pipelined_s: float) -> Result:
    result = Result(messages=21, message_bytes=20_000, rounds=1, loop="asyncio")
    for mode, seconds in zip(MODES, (poplib_s, 0.6, pipelined_s), strict=True):
        result.seconds[f"20 {mode}"] = [seconds]
    return result


def test_table_judges_the_pipelined_read_against_poplib_at_20_ms() -> None:
    met = table(_result(0.6, 0.2))
    assert "| 20 | asyncnet, pipelined | 200 | 3.00x |" in met
    assert met.endswith("asyncnet, pipelined vs poplib at 20 ms: >= 2x: 3.00x, met")
    assert table(_result(0.6, 0.4)).endswith(": >= 2x: 1.50x, MISSED")
    unmeasured = Result(messages=1, message_bytes=1, rounds=1, loop="asyncio")
    for mode in MODES:
        unmeasured.seconds[f"0 {mode}"] = [0.01]
    assert table(unmeasured).endswith("not measured (add 20 to --rtt)")


def test_table_judges_the_server_memory_and_the_sessions() -> None:
    result = _result(0.6, 0.2)
    result.memory = {"message_bytes": 12_000_000, "growth_bytes": 3 * 1024 * 1024}
    result.sessions = {"sessions": 100, "served": 100, "seconds": 1.5}
    lines = table(result).splitlines()
    assert lines[-2] == (
        "- server peak RSS growth during a 12 MB RETR (poplib): 3.00 MiB: < 4 MiB, met"
    )
    assert lines[-1] == (
        "- 100 sessions at once, a 256 KiB RETR each: 100/100 served byte-exact in 1.50 s: all, met"
    )
    result.memory["growth_bytes"] = 5 * 1024 * 1024
    result.sessions["served"] = 99
    lines = table(result).splitlines()
    assert lines[-2].endswith("5.00 MiB: < 4 MiB, MISSED")
    assert "99/100 served" in lines[-1]
    assert lines[-1].endswith("all, MISSED")


def test_a_big_message_has_the_size_asked_and_stuffed_lines() -> None:
    message = big_message(100_000)
    assert 100_000 <= len(message) < 100_200
    assert b"\r\n.a stuffed line\r\n" in message
    assert message.endswith(b"\r\n")


@pytest.mark.timeout(120)
def test_a_small_run_end_to_end(tmp_path: Path) -> None:
    """Three messages, one round, at 0 ms: every mode reads them (checked by sha256
    inside the benchmark), the table has a row per mode and the JSON every sample;
    the server's memory during a 12 MB RETR and 100 sessions at once are measured
    (the message and every session checked byte-exact), unless --no-memory."""
    out = tmp_path / "pop3.json"
    done = run_bench("--rounds", "1", "--messages", "3", "--size", "2000", "--rtt", "0")
    assert done.returncode == 0, done.stderr
    for mode in MODES:
        assert f"| 0 | {mode} |" in done.stdout
    assert "not measured (add 20 to --rtt)" in done.stdout
    if sys.platform.startswith("linux"):
        assert "- server peak RSS growth during a 12 MB RETR (poplib): " in done.stdout
    assert "- 100 sessions at once, a 256 KiB RETR each: 100/100 served" in done.stdout
    done = run_bench(
        "--rounds",
        "1",
        "--messages",
        "3",
        "--size",
        "2000",
        "--rtt",
        "20",
        "--no-memory",
        "--json",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert "RETR each" not in done.stdout  # --no-memory
    raw = json.loads(out.read_text())
    assert raw["memory"] is None
    assert raw["sessions"] is None
    samples = raw["seconds"]
    assert set(samples) == {f"20 {mode}" for mode in MODES}
    # At 20 ms even the pipelined read pays the handshake, greeting and login.
    assert all(len(s) == 1 and s[0] > 0.1 for s in samples.values()), samples


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--rtt", "fast"], "milliseconds"),
        (["--rtt", "5000"], "0 to 2000 ms"),
        (["--rounds", "0"], "--rounds must be at least 1"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(args: list[str], words: str) -> None:
    done = run_bench(*args)
    assert done.returncode == 2
    assert words in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr
