"""The benchmark's C load generator: it builds, and its counts match what a real server saw.

The generator (``benchmarks/cload/loadgen.c``, built by ``benchmarks.cloadgen``) drives
an asyncnet line server on 127.0.0.1 for a short bounded run; the server counts the
lines it answered and the bytes it moved, so a generator that miscounts, drops or
invents replies fails here.  Skipped where no C compiler exists (the benchmark then
falls back to the Python generator, which the last tests check).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from asyncnet import LineHandler, tcp_server, udp_server
from asyncnet.demos.upper import UpperDatagram
from benchmarks import cloadgen

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if cloadgen.compiler() is None:
        pytest.skip("no C compiler: the benchmark falls back to the Python generator")
    return cloadgen.build(into=tmp_path_factory.mktemp("cload"))


class CountingUpper(LineHandler):
    """The upper service, counting the lines it answered across all connections."""

    answered = 0

    def handle_line(self, line: str) -> str:
        type(self).answered += 1
        return line.upper()


class Lowercase(LineHandler):
    """A wrong answer: the generator must notice it."""

    def handle_line(self, line: str) -> str:
        return line


async def run_generator(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def parse(out: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    ("mode", "connections", "depth", "size"),
    [("tcp", 20, 1, 64), ("pipelined", 4, 16, 1024)],
)
async def test_counts_add_up_against_a_real_server(
    binary: Path, mode: str, connections: int, depth: int, size: int
) -> None:
    """Every line sent was answered once, and the bytes match the server's own counters."""
    CountingUpper.answered = 0
    async with tcp_server(CountingUpper, port=0) as server:
        status, out, err = await run_generator(
            str(binary),
            mode,
            f"--port={server.address[1]}",
            f"--connections={connections}",
            f"--inflight={depth}",
            f"--size={size}",
            "--warmup=0.05",
            "--duration=0.3",
            "--max-requests=20000",
            f"--server-pid={os.getpid()}",
        )
        assert status == 0, err
        result = parse(out)
        stats = server.stats
    assert result["generator"] == "c"
    assert result["mode"] == mode
    if mode == "pipelined":
        assert result["inflight"] == depth
        assert result["line_bytes"] == size
        assert result["mib_per_s"] > 0
    assert result["connected"] == connections
    assert result["connect_failed"] == 0
    assert result["errors"] == 0
    assert result["lost"] == 0
    assert result["outstanding"] == 0
    assert result["served"] == connections
    # The measured window is bounded by --max-requests (give or take the replies
    # already on the wire when it was reached).
    assert 0 < result["requests"] <= 20000 + connections * depth
    assert result["rps"] > 0
    assert result["seconds"] > 0
    assert result["sent"] == result["replies"] == CountingUpper.answered
    assert result["requests"] <= result["replies"]
    assert result["bytes_sent"] == result["sent"] * size == stats.bytes_in
    assert result["bytes_received"] == result["replies"] * size == stats.bytes_out
    assert 0 < result["p50_us"] <= result["p90_us"] <= result["p99_us"] <= result["max_us"]
    assert result["server_cpu_s"] >= 0
    assert result["gen_cpu_pct"] > 0


async def test_a_wrong_reply_is_an_error(binary: Path) -> None:
    async with tcp_server(Lowercase, port=0) as server:
        status, out, err = await run_generator(
            str(binary), "tcp", f"--port={server.address[1]}", "--connections=3", "--duration=0.1"
        )
    assert status == 0, err
    result = parse(out)
    assert result["errors"] == 3
    assert result["requests"] == 0


async def test_refuses_a_host_that_is_not_loopback(binary: Path) -> None:
    status, out, err = await run_generator(
        str(binary), "tcp", "--host=192.0.2.1", "--port=9", "--duration=0.1"
    )
    assert status == 2
    assert out == ""
    assert "loopback" in err.splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["tcp"], "--port is required"),
        (["flood", "--port=9"], "mode must be tcp or pipelined"),
        (["tcp", "--port=9", "--duration=abc"], "--duration must be a number"),
        (["tcp", "--port=9", "--bogus"], "unknown argument --bogus"),
    ],
)
async def test_bad_arguments_are_one_line(binary: Path, argv: list[str], words: str) -> None:
    status, _out, err = await run_generator(str(binary), *argv)
    assert status == 2
    assert words in err.splitlines()[-1]


async def test_connection_refused_is_counted_not_fatal(binary: Path) -> None:
    """A port with no listener: every connect fails, the run still ends with its JSON."""
    async with tcp_server(CountingUpper, port=0) as server:
        port = server.address[1]
    status, out, err = await run_generator(
        str(binary), "tcp", f"--port={port}", "--connections=5", "--duration=0.05"
    )
    assert status == 0, err
    result = parse(out)
    assert result["connected"] == 0
    assert result["connect_failed"] == 5
    assert result["requests"] == 0


async def test_the_build_is_cached(binary: Path) -> None:
    """A second build() finds the first one instead of compiling again."""
    again = cloadgen.build(into=binary.parent)
    assert again == binary
    assert sorted(p.name for p in binary.parent.iterdir()) == [binary.name]


async def test_without_a_compiler_the_python_generator_runs_and_says_so(tmp_path: Path) -> None:
    CountingUpper.answered = 0
    async with tcp_server(CountingUpper, port=0) as server:
        env = {
            **os.environ,
            "CC": str(tmp_path / "no-such-compiler"),
            "ASYNCNET_BENCH_CACHE": str(tmp_path / "cache"),
        }
        status, out, err = await run_generator(
            sys.executable,
            "-m",
            "benchmarks.cloadgen",
            "tcp",
            f"--port={server.address[1]}",
            "--connections=2",
            "--warmup=0.05",
            "--duration=0.2",
            "--max-requests=2000",
            env=env,
        )
    assert status == 0, err
    result = parse(out)
    assert result["generator"] == "python"
    assert "C generator unavailable" in result["generator_note"]
    assert result["requests"] > 0
    assert result["errors"] == 0
    assert not (tmp_path / "cache").exists()


async def test_modes_without_a_c_version_run_in_python() -> None:
    """udp (like hold and fairness) has no C version: the Python generator serves it."""
    async with udp_server(UpperDatagram, port=0) as server:
        status, out, err = await run_generator(
            sys.executable,
            "-m",
            "benchmarks.cloadgen",
            "udp",
            f"--port={server.address[1]}",
            "--inflight=2",
            "--warmup=0.05",
            "--duration=0.2",
            "--max-requests=500",
        )
    assert status == 0, err
    result = parse(out)
    assert result["generator"] == "python"
    assert "generator_note" not in result
    assert result["mode"] == "udp"
    assert result["requests"] > 0
