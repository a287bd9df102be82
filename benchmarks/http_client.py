"""``python -m benchmarks.http_client``: HTTP downloads, asyncnet's web client against urllib.

    python -m benchmarks.http_client              # 7 interleaved rounds: about 20 s
    python -m benchmarks.http_client --rounds 3   # quicker, noisier

One server process on 127.0.0.1 serves a 20 MiB file over HTTP and HTTPS (a
trustme CA): nginx (one worker, ``sendfile on``) when installed, else asyncnet's
own ``StaticFiles`` on aiohttp in a separate process, so that neither client
shares a GIL with the server.  In this process, each round then downloads the file
with every client, in an order that rotates from round to round so that whatever
else the machine does falls on all of them:

* ``memory``: urllib ``urlopen(url).read()`` against ``Client.fetch(url)``
  (decoded and bounded by ``max_body``);
* ``file``: urllib copied to ``FILE.part`` with ``shutil.copyfileobj`` and renamed
  (what a careful urllib script does) against ``Client.download(url, FILE)``
  (``.part``, ``max_ratio``, rename).

Every download opens its own connection (a fresh ``Client`` each time, made
before the clock starts; urllib has no pool), both sides share one
``SSLContext``, and asyncnet runs on the loop ``asyncnet.run`` picks (uvloop when
installed).  Each byte is checked afterwards (size and sha256), off the clock.
The table shows the median MB/s; the targets are asyncnet >= 1.0x urllib over
plain HTTP and >= 0.9x over HTTPS.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Self

from .http import stop_server
from .nginx import NGINX, spawn_nginx
from .paths import PACKAGE_PARENT, python_path

MiB = 1024 * 1024
SIZE = 20 * MiB
TARGETS = {"http": 1.0, "https": 0.9}

STATIC_MAIN = """
import asyncio, ssl, sys
from aiohttp import web
from asyncnet.web import StaticFiles

async def main(root, cert, key):
    files = StaticFiles(root)
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", files.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    plain = web.TCPSite(runner, "127.0.0.1", 0)
    tls = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await plain.start()
    await tls.start()
    ports = [address[1] for address in runner.addresses]
    print(ports[0], ports[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main(*sys.argv[1:4]))
"""


class BenchError(RuntimeError):
    """The server could not start, or a download came back wrong."""


@dataclass
class Server:
    """The server process and its two ports."""

    name: str
    proc: subprocess.Popen[bytes]
    plain: int
    tls: int
    stop_signal: int

    def stop(self) -> None:
        """Stop the server (its own signal, then SIGKILL to its process group)."""
        stop_server(self.proc, self.stop_signal)


def start_nginx(root: Path, cert: Path, key: Path, scratch: Path) -> Server:
    """nginx on two 127.0.0.1 sockets bound here: plain and TLS."""
    proc, plain, tls = spawn_nginx(root, scratch, tls=(cert, key))
    assert tls is not None
    return Server("nginx", proc, plain, tls, signal.SIGQUIT)


def start_static(root: Path, cert: Path, key: Path) -> Server:
    """asyncnet's StaticFiles on aiohttp, in its own process; waits for its two ports."""
    env = {**os.environ, "PYTHONPATH": python_path()}
    proc = subprocess.Popen(
        [sys.executable, "-c", STATIC_MAIN, str(root), str(cert), str(key)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=PACKAGE_PARENT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if len(line) != 2:
        proc.kill()
        proc.wait()
        raise BenchError("asyncnet's static server did not announce its ports")
    return Server("asyncnet StaticFiles", proc, int(line[0]), int(line[1]), signal.SIGTERM)


# -- the clients -----------------------------------------------------------------------


@dataclass
class Sample:
    """One download: wall seconds, CPU seconds of this process, page faults."""

    seconds: float
    cpu: float
    faults: int


class Clock:
    """Measures one download's wall time, this process's CPU time and its page faults."""

    def __enter__(self) -> Self:
        self._usage = resource.getrusage(resource.RUSAGE_SELF)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        seconds = time.perf_counter() - self._start
        usage = resource.getrusage(resource.RUSAGE_SELF)
        before = self._usage
        cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
        self.sample = Sample(seconds, cpu, usage.ru_minflt - before.ru_minflt)


def urllib_memory(runner: asyncio.Runner, url: str, context: ssl.SSLContext, dest: Path) -> Sample:
    """urllib.request, the body read whole."""
    with Clock() as clock:
        with urllib.request.urlopen(url, context=context, timeout=30) as response:
            body: bytes = response.read()
    _check(body)
    return clock.sample


def urllib_file(runner: asyncio.Runner, url: str, context: ssl.SSLContext, dest: Path) -> Sample:
    """urllib.request copied to ``dest.part``, renamed when complete."""
    part = dest.with_name(dest.name + ".part")
    with Clock() as clock:
        with urllib.request.urlopen(url, context=context, timeout=30) as response:
            with part.open("wb") as out:
                shutil.copyfileobj(response, out)
        part.replace(dest)
    _check(dest.read_bytes())
    return clock.sample


def asyncnet_memory(
    runner: asyncio.Runner, url: str, context: ssl.SSLContext, dest: Path
) -> Sample:
    """``Client.fetch(url)`` on a fresh client (made before the clock starts)."""
    from asyncnet.web import Client

    async def one() -> Sample:
        async with Client(ssl=context, max_body=SIZE, trust_env=False) as client:
            with Clock() as clock:
                response = await client.fetch(url)
        _check(response.body)
        return clock.sample

    return runner.run(one())


def asyncnet_file(runner: asyncio.Runner, url: str, context: ssl.SSLContext, dest: Path) -> Sample:
    """``Client.download(url, dest)`` on a fresh client."""
    from asyncnet.web import Client

    async def one() -> Sample:
        async with Client(ssl=context, trust_env=False) as client:
            with Clock() as clock:
                await client.download(url, dest)
        return clock.sample

    sample = runner.run(one())
    _check(dest.read_bytes())
    return sample


ROWS: dict[str, Callable[[asyncio.Runner, str, ssl.SSLContext, Path], Sample]] = {
    "urllib memory": urllib_memory,
    "asyncnet memory": asyncnet_memory,
    "urllib file": urllib_file,
    "asyncnet file": asyncnet_file,
}
_EXPECTED: dict[str, str] = {}


def _check(body: bytes) -> None:
    if len(body) != SIZE or hashlib.sha256(body).hexdigest() != _EXPECTED["sha256"]:
        raise BenchError(f"a download came back wrong: {len(body)} bytes")


# -- the run ---------------------------------------------------------------------------


@dataclass
class Result:
    """Every row's samples, per scheme, and how they were taken."""

    server: str
    loop: str
    rounds: int
    size: int
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def median(self, key: str, what: str) -> float:
        """The median of one measure (``seconds``, ``cpu``, ``faults``) of one row."""
        return float(statistics.median(getattr(s, what) for s in self.samples[key]))


def run(rounds: int, use_nginx: bool) -> Result:
    """Download the file ``rounds`` times with every client, interleaved."""
    import trustme

    from asyncnet._runner import loop_factory

    with tempfile.TemporaryDirectory(prefix="asyncnet-bench-http-client-") as tmp:
        scratch = Path(tmp)
        root = scratch / "www"
        root.mkdir()
        data = os.urandom(SIZE)
        (root / "big.bin").write_bytes(data)
        _EXPECTED["sha256"] = hashlib.sha256(data).hexdigest()
        del data
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        cert.private_key_pem.write_to_path(str(scratch / "key.pem"))
        with (scratch / "cert.pem").open("wb") as out:
            for pem in cert.cert_chain_pems:
                out.write(pem.bytes())
        context = ssl.create_default_context()
        ca.configure_trust(context)
        if use_nginx and NGINX is not None:
            server = start_nginx(root, scratch / "cert.pem", scratch / "key.pem", scratch)
        else:
            server = start_static(root, scratch / "cert.pem", scratch / "key.pem")
        dest = scratch / "out.bin"
        factory = loop_factory()
        result = Result(server.name, "uvloop" if factory else "asyncio", rounds, SIZE)
        urls = {
            "http": f"http://127.0.0.1:{server.plain}/big.bin",
            "https": f"https://127.0.0.1:{server.tls}/big.bin",
        }
        rows = list(ROWS.items())
        try:
            with asyncio.Runner(loop_factory=factory) as runner:
                # One untimed download each: nginx's first read of the file, imports.
                for url in urls.values():
                    urllib_memory(runner, url, context, dest)
                    asyncnet_memory(runner, url, context, dest)
                for round_ in range(rounds):
                    for scheme, url in urls.items():
                        shift = round_ % len(rows)
                        for name, measure in rows[shift:] + rows[:shift]:
                            sample = measure(runner, url, context, dest)
                            result.samples.setdefault(f"{scheme} {name}", []).append(sample)
                            dest.unlink(missing_ok=True)
        finally:
            server.stop()
        return result


def table(result: Result) -> str:
    """The Markdown table of medians, with each target met or missed."""
    lines = [
        f"HTTP client, {result.size // MiB} MiB from {result.server} on 127.0.0.1, "
        f"median of {result.rounds} interleaved rounds, asyncnet on {result.loop}",
        "",
        "| transfer | urllib MB/s | asyncnet MB/s | ratio | target | CPU ms urllib / asyncnet |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for scheme, target in TARGETS.items():
        for mode in ("memory", "file"):
            stdlib, ours = f"{scheme} urllib {mode}", f"{scheme} asyncnet {mode}"
            theirs_rate = result.size / result.median(stdlib, "seconds") / 1e6
            ours_rate = result.size / result.median(ours, "seconds") / 1e6
            ratio = ours_rate / theirs_rate
            verdict = "met" if ratio >= target else "MISSED"
            cpu = (
                f"{result.median(stdlib, 'cpu') * 1e3:.0f} / {result.median(ours, 'cpu') * 1e3:.0f}"
            )
            lines.append(
                f"| {scheme} {mode} | {theirs_rate:.0f} | {ours_rate:.0f} | {ratio:.2f}x "
                f"| >= {target}x {verdict} | {cpu} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.http_client",
        description="HTTP downloads: asyncnet's web client against urllib, same server.",
    )
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument(
        "--no-nginx", action="store_true", help="use asyncnet's static server even with nginx"
    )
    parser.add_argument("--json", type=Path, help="also write the raw seconds to this file")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    try:
        result = run(args.rounds, use_nginx=not args.no_nginx)
    except (BenchError, OSError) as exc:
        print(f"http_client: {exc}", file=sys.stderr)
        return 1
    print(table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(result), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
