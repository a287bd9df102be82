"""The client-side comparison (benchmarks.clients) at tiny scale.

No speed is asserted: only that every mode does the same work against real loopback
servers in another process, and that the numbers the report promises are there.
"""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import clients
from benchmarks.clientload import dot_stuff
from benchmarks.workload import Workload, message_bytes, prepare_root

ROOT = Path(__file__).resolve().parents[1]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
TINY = {"tiny": Workload(mailboxes=2, messages=3, files=2, pages=3, file_kib=8, concurrency=4)}


def test_messages_parse_and_need_dot_stuffing() -> None:
    """The POP3 messages are real mail, and one line makes the server dot-stuff."""
    data = message_bytes(1, 2)
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message["Subject"] == "bench 1/2"
    assert b"\r\n.a line starting with a dot\r\n" in data
    stuffed = dot_stuff(data)  # as the benchmark's POP3 server sends it
    assert b"\r\n..a line starting with a dot\r\n" in stuffed
    assert stuffed.endswith(b"line 59 of message 2 for box 1\r\n.\r\n")
    assert stuffed.count(b"\r\n") == data.count(b"\r\n") + 1


def test_prepare_root_writes_the_files_and_linked_pages(tmp_path: Path) -> None:
    workload = Workload(mailboxes=1, messages=1, files=3, pages=4, file_kib=2)
    prepare_root(tmp_path, workload)
    assert sorted(p.name for p in (tmp_path / "ftp").iterdir()) == [
        "file0.bin",
        "file1.bin",
        "file2.bin",
    ]
    assert (tmp_path / "ftp" / "file1.bin").stat().st_size == 2048
    assert 'href="page0.html"' in (tmp_path / "www" / "page3.html").read_text()
    assert workload.jobs() == 1 + 1 + 3 + 4


@linux_only
@pytest.mark.timeout(120)
def test_every_mode_does_the_same_work_at_each_rtt() -> None:
    """Servers in one process, proxies in another, each run fresh: same bytes, delays felt."""
    results = clients.run_clients(sizes=TINY, rtts_ms=(0, 20), repeats=1, timeout=40)
    entry = results["sizes"]["tiny"]
    assert set(entry["rtts"]) == {"0", "20"}
    expected = {"sequential", "threads"} | ({"asyncnet"} if clients.asyncnet_available() else set())
    for at in entry["rtts"].values():
        modes = at["modes"]
        assert set(modes) == expected
        read = {m["bytes"] for m in modes.values()}
        assert len(read) == 1, modes
        (total,) = read
        files = 2 * 8 * 1024
        assert total > files + 2 * 3 * 2000  # the files, the mail, the sends and the pages
        for name, m in modes.items():
            assert m["wall_s"] > 0, name
            assert m["peak_rss_kib"] >= m["rss_before_kib"] > 0, name
            assert m["runs"][0]["jobs"] == entry["jobs"] == 2 + 2 + 2 + 3
        assert modes["sequential"]["threads"] == 1
        assert modes["threads"]["threads"] > 1
    # One after another, the 9 jobs make about 58 round trips (each session's handshake,
    # greeting, every command, each page's connection): the delay is on every connection.
    slow = entry["rtts"]["20"]["modes"]
    assert slow["sequential"]["wall_s"] >= 40 * 0.020, slow["sequential"]
    assert slow["sequential"]["wall_s"] > 2 * entry["rtts"]["0"]["modes"]["sequential"]["wall_s"]
    assert not [n for n in results["notes"] if "different bytes" in n]
    table = clients.markdown_table(results)
    assert table.split("\n\n")[0].count("\n") == 1 + 2 * len(expected)
    assert "blocking stdlib, thread pool" in table
    # The targets are judged at 100 ms, not run here: each one says so.
    assert [v["met"] for v in results["targets"]] == [None, None, None]
    assert table.count("not measured") == 3


def test_judge_reads_the_100_ms_point_of_the_largest_size() -> None:
    """Ratios are reference over asyncnet; RSS must be strictly lower to count as met."""

    def mode(wall: float, rss: int) -> dict[str, float]:
        return {"wall_s": wall, "peak_rss_kib": rss}

    at100 = {
        "sequential": mode(20.0, 30000),
        "threads": mode(2.0, 31000),
        "asyncnet": mode(1.0, 31000),
    }
    results = {
        "sizes": {
            "small": {"rtts": {"100": {"modes": {k: mode(1.0, 1) for k in at100}}}},
            "large": {"rtts": {"0": {"modes": {}}, "100": {"modes": at100}}},
        }
    }
    verdicts = clients.judge(results)
    assert [(v["ratio"], v["met"], v["size"]) for v in verdicts] == [
        (20.0, True, "large"),
        (2.0, True, "large"),
        (1.0, False, "large"),
    ]
    assert clients.parse_rtts("0,20,100,20") == (0.0, 20.0, 100.0)
    for bad in ("", "x", "-1", "5000"):
        with pytest.raises(ValueError, match="--rtt"):
            clients.parse_rtts(bad)


def test_plot_is_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    run = {"wall_s": 1.0, "peak_rss_kib": 30000, "rss_before_kib": 29000, "threads": 1}
    seq = {**run, "label": "seq", "bytes": 1, "runs": [run]}
    results = {
        "repeats": 1,
        "notes": [],
        "sizes": {
            "small": {
                "workload": {},
                "jobs": 4,
                "rtts": {
                    "0": {"rtt_ms": 0.0, "modes": {"sequential": seq}},
                    "20": {"rtt_ms": 20.0, "modes": {"sequential": {**seq, "wall_s": 3.0}}},
                },
            }
        },
    }
    png = tmp_path / "clients.png"
    clients.write_plot(results, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("argv", "status"),
    [
        (["--help"], 0),
        (["--bogus"], 2),
        (["--rtt", "0,x"], 2),
        (["--rtt", "-5"], 2),
        (["--size", "huge"], 2),
        (["--loop-concurrency", "-1"], 2),
    ],
)
def test_cli_help_and_bad_flags(argv: list[str], status: int) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.clients", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr


def test_full_bench_has_the_skip_flag() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "--no-clients" in done.stdout
    json.dumps(clients.client_sizes(quick=True)["small"].jobs())
