"""What both sides of the client comparison agree on: the workload, the mail, the numbers.

The loopback servers (``clientload serve``), the blocking client runs (``clientload
run``) and the asyncnet run (:mod:`.clientasync`) each import this, never each other,
so the asyncnet run can be imported alone, after the RSS before it was read.
"""

from __future__ import annotations

import resource
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "HOST",
    "PASSWORD",
    "Workload",
    "message_bytes",
    "prepare_root",
    "result_of",
    "status_field",
]

PASSWORD = "bench"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Workload:
    """N mailboxes x M messages over POP3, N SMTP sends, K FTP files, P HTTP pages."""

    mailboxes: int
    messages: int
    files: int
    pages: int
    file_kib: int = 256
    concurrency: int = 16
    """Threads in the blocking pool: jobs at once there."""
    loop_concurrency: int = 0
    """Jobs at once on the event loop; 0: every job at once (a task costs no thread)."""

    def jobs(self) -> int:
        """How many jobs one run does (a mailbox, a send, a file and a page are one each)."""
        return 2 * self.mailboxes + self.files + self.pages


def message_bytes(box: int, number: int) -> bytes:
    """One deterministic message of about 3 KB, with a line that needs dot-stuffing."""
    body = "".join(f"line {n} of message {number} for box {box}\r\n" for n in range(60))
    return (
        f"From: sender{number}@localhost\r\nTo: box{box}@localhost\r\n"
        f"Subject: bench {box}/{number}\r\nDate: Tue, 20 Jan 2004 10:00:00 -0500\r\n\r\n"
        f".a line starting with a dot\r\n{body}"
    ).encode()


def prepare_root(root: Path, workload: Workload) -> None:
    """The FTP files and the HTML pages the servers serve (pages link to each other)."""
    (root / "ftp").mkdir(parents=True, exist_ok=True)
    (root / "www").mkdir(parents=True, exist_ok=True)
    chunk = bytes(range(256)) * 4
    for k in range(workload.files):
        (root / "ftp" / f"file{k}.bin").write_bytes(chunk * workload.file_kib)
    for p in range(workload.pages):
        links = "".join(
            f'<a href="page{q % workload.pages}.html">{q}</a>\n' for q in range(p, p + 5)
        )
        text = "<p>Network programming in Python.</p>\n" * 80
        (root / "www" / f"page{p}.html").write_text(f"<html><body>{links}{text}</body></html>\n")


def status_field(field: str) -> int:
    """A number from /proc/self/status (VmRSS, VmHWM in KiB; Threads); 0 elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return threading.active_count() if field == "Threads" else 0


def result_of(started: float, rss_before: int, threads: int, done: list[int]) -> dict[str, Any]:
    wall = time.perf_counter() - started
    # VmHWM belongs to this process image; ru_maxrss survives execve(), so a client
    # forked from a big parent (the bench harness) would report the parent's peak.
    peak = status_field("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "wall_s": round(wall, 4),
        "rss_before_kib": rss_before,
        "peak_rss_kib": peak,
        "threads": threads,
        "jobs": len(done),
        "bytes": sum(done),
    }
