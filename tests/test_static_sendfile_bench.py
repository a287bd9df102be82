"""``python -m benchmarks.http``'s parts: its Python generator and its reading of wrk.

Speed is never asserted; these check that the numbers the benchmark reports are
counted right, against the web demo's server on 127.0.0.1 port 0.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from asyncnet.web import web_server
from benchmarks.http import HTTPBenchError, judge, markdown, parse_wrk, python_load

pytestmark = pytest.mark.timeout(60)

WRK_REPORT = """Running 3s test @ http://127.0.0.1:18080/small.bin
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    13.20ms    4.07ms  59.59ms   90.08%
    Req/Sec     3.82k   511.34     4.47k    73.33%
  11432 requests in 3.01s, 14.85MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   3797.54
Transfer/sec:      4.93MB
"""


def test_parse_wrk_reads_counts_rates_and_errors() -> None:
    result = parse_wrk(WRK_REPORT)
    assert result["requests"] == 11432
    assert result["seconds"] == pytest.approx(3.01)
    assert result["rps"] == pytest.approx(3797.54)
    assert result["bytes_per_s"] == pytest.approx(4.93 * 1024 * 1024)
    assert result["errors"] == 7


def test_parse_wrk_refuses_what_it_cannot_read() -> None:
    with pytest.raises(HTTPBenchError, match="cannot read wrk"):
        parse_wrk("unable to connect to 127.0.0.1:9 Connection refused\n")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "small.bin").write_bytes(os.urandom(1024))
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    return root


@pytest.mark.parametrize(("path", "size"), [("/small.bin", 1024), ("/big.bin", 3 << 20)])
async def test_python_load_counts_whole_responses(site: Path, path: str, size: int) -> None:
    async with web_server(site, port=0) as server:
        result = await python_load(server.address[1], path, 4, 0.3, size)
    assert result["requests"] > 0
    assert result["errors"] == 0
    assert result["bytes_per_s"] == pytest.approx(result["requests"] * size / result["seconds"])


async def test_python_load_counts_a_wrong_size_as_an_error(site: Path) -> None:
    async with web_server(site, port=0) as server:
        result = await python_load(server.address[1], "/small.bin", 2, 0.2, 999)
    assert result["requests"] > 0
    assert result["errors"] == result["requests"]


async def test_wrk_against_the_web_server_reads_back(site: Path) -> None:
    """Real wrk output, parsed: the requests it counts are ones the server answered."""
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.skip("wrk is not installed (Debian: apt-get install -y wrk)")
    async with web_server(site, port=0) as server:
        process = await asyncio.create_subprocess_exec(
            wrk,
            "-t1",
            "-c4",
            "-d1s",
            f"http://127.0.0.1:{server.address[1]}/small.bin",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(30):
            out, err = await process.communicate()
    assert process.returncode == 0, err
    result = parse_wrk(out.decode())
    assert result["requests"] > 0
    assert result["errors"] == 0
    assert result["rps"] == pytest.approx(result["requests"] / result["seconds"], rel=0.05)


def test_targets_are_ratios_within_the_run() -> None:
    def row(server: str, workload: str, rps: float, mb: float) -> dict[str, object]:
        return {
            "server": server,
            "workload": workload,
            "rps": rps,
            "rps_spread": 0.0,
            "mb_per_s": mb,
            "server_us_per_req": 1.0,
            "errors": 0,
        }

    result: dict[str, object] = {
        "generator": "wrk",
        "repeat": 1,
        "duration": 1.0,
        "rows": [
            row("web demo", "small", 900, 0),
            row("aiohttp web.static", "small", 1000, 0),
            row("http.server", "small", 400, 0),
            row("web demo", "big", 0, 600),
        ],
    }
    verdicts = judge(result)
    assert [(v["ratio"], v.get("met")) for v in verdicts] == [
        (pytest.approx(0.9), True),
        (pytest.approx(2.25), False),
        (None, None),  # no nginx row: not measured, neither met nor missed
    ]
    result["targets"] = verdicts
    text = markdown(result)
    assert "2.25x, MISSED" in text
    assert "web demo >= 0.7x nginx: not measured" in text
