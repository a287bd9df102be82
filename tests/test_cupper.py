"""The benchmark's C reference server (``benchmarks/cload/upper_server.c``, run by
``python -m benchmarks.cupper``): it answers the upper service as the Python servers do,
the C load generator's counts add up against it, and without a compiler the harness
skips its row and says why.  Skipped where no C compiler exists."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from benchmarks import cloadgen
from benchmarks.harness import BenchConfig, run_bench

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def c_server(tmp_path: Path) -> AsyncIterator[tuple[int, int]]:
    """The C server on 127.0.0.1, port 0, built into this test's own cache: (port, pid)."""
    if cloadgen.compiler() is None:
        pytest.skip("no C compiler: the harness skips the C server's row")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.cupper",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "ASYNCNET_BENCH_CACHE": str(tmp_path / "cache")},
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):  # the first use compiles it
            line = (await process.stdout.readline()).decode()
        match = re.fullmatch(r"listening on tcp://127\.0\.0\.1:(\d+)\n", line)
        assert match, line
        yield int(match.group(1)), process.pid
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def test_answers_whole_lines_split_lines_and_pipelined_lines(
    c_server: tuple[int, int],
) -> None:
    port, _ = c_server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"hello, World 1\nhal")
        await writer.drain()
        async with asyncio.timeout(5):
            assert await reader.readline() == b"HELLO, WORLD 1\n"
        writer.write(b"f a line\n" + b"".join(b"line %d\n" % n for n in range(500)))
        async with asyncio.timeout(5):
            assert await reader.readline() == b"HALF A LINE\n"
            for n in range(500):
                assert await reader.readline() == b"LINE %d\n" % n
        writer.write_eof()
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # it closes when the client does
    finally:
        writer.close()


async def test_the_c_generator_counts_add_up_against_it(c_server: tuple[int, int]) -> None:
    port, pid = c_server
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.cloadgen",
        "pipelined",
        f"--port={port}",
        "--connections=4",
        "--inflight=16",
        "--size=1024",
        "--warmup=0.05",
        "--duration=0.3",
        "--max-requests=20000",
        f"--server-pid={pid}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["errors"] == 0
    assert result["lost"] == 0
    assert result["served"] == result["connected"] == 4
    assert result["sent"] == result["replies"] > 0
    assert result["server_cpu_s"] >= 0
    # The PID the harness starts and measures is the C program's own (cupper exec()s it).
    if Path("/proc/self/exe").exists():
        assert Path(f"/proc/{pid}/exe").resolve().name.startswith("upper_server-")


def test_bad_port_is_one_line_and_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.cupper", "http"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "usage: python -m benchmarks.cupper [PORT]" in done.stderr


def test_without_a_compiler_the_harness_skips_the_row_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("benchmarks.harness.compiler", lambda: None)
    config = BenchConfig(
        implementations=("c-epoll",),
        points=(1,),
        memory_points=(),
        repeats=1,
        udp=False,
        fairness=False,
        pipelined=False,
    )
    results = run_bench(config, progress=lambda line: None)
    assert results["implementations"] == {}
    assert "c-epoll skipped: no C compiler (set CC, or install gcc)" in results["notes"]
