"""The web, fetch and links demos as programs: flags, one-line failures, a real session."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ROOT, read_listening_line, spawn

DEMOS = ["web", "fetch", "links"]


def run_demo(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("demo", DEMOS)
@pytest.mark.slow
def test_help_and_bad_flags(demo: str) -> None:
    assert run_demo(f"asyncnet.demos.{demo}", "--help").returncode == 0
    url = [] if demo == "web" else ["http://127.0.0.1:1/"]  # never contacted
    bad = run_demo(f"asyncnet.demos.{demo}", *url, "--no-such-flag")
    assert bad.returncode == 2
    assert bad.stderr == (
        f"python -m asyncnet.demos.{demo}: error: unrecognized arguments: --no-such-flag"
        " (see --help)\n"
    )


def _one_line_failure(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.slow
def test_web_port_in_use() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = run_demo("asyncnet.demos.web", "--port", str(port))
    _one_line_failure(result, f"127.0.0.1:{port}", "in use")


@pytest.mark.slow
def test_web_missing_directory(tmp_path: Path) -> None:
    _one_line_failure(run_demo("asyncnet.demos.web", str(tmp_path / "nope")), "no directory")


@pytest.mark.slow
def test_web_debug_refuses_all_interfaces() -> None:
    result = run_demo("asyncnet.demos.web", "--debug", "--all-interfaces", "--port", "0")
    _one_line_failure(result, "loopback")


@pytest.mark.slow
def test_fetch_refused(closed_port: int) -> None:
    port = closed_port
    result = run_demo("asyncnet.demos.fetch", f"http://127.0.0.1:{port}/", "--timeout", "5")
    _one_line_failure(result, "refused")
    verbose = run_demo("asyncnet.demos.fetch", f"http://127.0.0.1:{port}/", "-vv")
    assert "Traceback" in verbose.stderr


@pytest.mark.slow
def test_fetch_bad_url() -> None:
    _one_line_failure(run_demo("asyncnet.demos.fetch", "ftp://127.0.0.1/"), "http")


@pytest.mark.slow
def test_sample_site_fetch_and_links_demos(tmp_path: Path) -> None:
    """The sample site served by the demo; fetch and links run against it; SIGTERM exits 0."""
    with spawn(["-m", "asyncnet.demos.web", "--sample", "--port", "0"]) as server:
        url = read_listening_line(server, r"on (http://127\.0\.0\.1:\d+/)").group(1)
        page = run_demo("asyncnet.demos.fetch", url)
        cgi = run_demo(
            "asyncnet.demos.fetch", url + "cgi-bin/sample.py", "-d", "subnum=42", "-d",
            "reviewer=<b>Steve</b>",
        )  # fmt: skip
        saved = run_demo("asyncnet.demos.fetch", url + "form.html", "-o", str(tmp_path / "f.html"))
        links = run_demo("asyncnet.demos.links", url)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
    assert page.returncode == 0, page.stderr
    assert page.stdout.startswith("200 OK")
    assert "Content-Type: text/html" in page.stdout
    assert "asyncnet sample site" in page.stdout
    assert "subnum=42<br>reviewer=&lt;b&gt;Steve&lt;/b&gt;<br>comments=None" in cgi.stdout
    assert saved.returncode == 0, saved.stderr
    assert "saved" in saved.stderr
    assert 'action="/cgi-bin/sample.py"' in (tmp_path / "f.html").read_text()
    assert links.returncode == 1  # the sample site has one broken link, on purpose
    assert "1 broken" in links.stdout
    assert f"BROKEN {url}docs/gone.html: 404 Not Found" in links.stdout


async def test_tour_web_stop(capsys: pytest.CaptureFixture[str]) -> None:
    """The tour's web section: served, fetched, the form posted both ways, crawled."""
    from asyncnet.demos.tour import web_stop

    async with asyncio.timeout(30):
        await web_stop()
    out = capsys.readouterr().out
    assert "GET / -> 200 text/html" in out
    echo = "subnum=42 reviewer=&lt;b&gt;Steve&lt;/b&gt; comments=spam &amp; eggs"
    assert f"POST /cgi-bin/sample.py -> 200: {echo}" in out
    assert f"POST /form -> 200: {echo}" in out
    assert "crawl: 9 pages, broken: ['http://127.0.0.1:" in out


@pytest.mark.slow
def test_web_takes_http_server_spellings(tmp_path: Path) -> None:
    """-d DIR and -b ADDRESS, as python -m http.server has them; SIGINT exits 0."""
    (tmp_path / "marker.txt").write_text("here")
    args = ["-m", "asyncnet.demos.web", "-d", str(tmp_path), "-b", "127.0.0.1", "--port", "0"]
    with spawn(args) as server:
        match = read_listening_line(server, r"serving (.+) on (http://127\.0\.0\.1:\d+/)")
        page = run_demo("asyncnet.demos.fetch", match.group(2) + "marker.txt")
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=10) == 0
    assert match.group(1) == str(tmp_path)
    assert page.stdout.rstrip().endswith("here")
