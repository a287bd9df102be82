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
def test_every_mode_does_the_same_work() -> None:
    """Servers in one process, each run in a fresh one: same bytes, sensible numbers."""
    results = clients.run_clients(sizes=TINY, repeats=1, timeout=40)
    entry = results["sizes"]["tiny"]
    modes = entry["modes"]
    expected = {"sequential", "threads"} | ({"asyncnet"} if clients.asyncnet_available() else set())
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
    assert not [n for n in results["notes"] if "different byte counts" in n]
    table = clients.markdown_table(results)
    assert table.count("\n") == 1 + len(modes)
    assert "blocking stdlib, thread pool" in table


def test_plot_is_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    run = {"wall_s": 1.0, "peak_rss_kib": 30000, "rss_before_kib": 29000, "threads": 1}
    results = {
        "repeats": 1,
        "notes": [],
        "sizes": {
            "small": {
                "workload": {},
                "jobs": 4,
                "modes": {"sequential": {**run, "label": "seq", "bytes": 1, "runs": [run]}},
            }
        },
    }
    png = tmp_path / "clients.png"
    clients.write_plot(results, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("argv", "status"), [(["--help"], 0), (["--bogus"], 2)])
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
