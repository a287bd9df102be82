"""The tutorial's FTP slides (ftplib's retrbinary, retrlines, storbinary, ftpStream), async.

    python -m asyncnet.demos.ftp                     # an embedded server over sample files
    python -m asyncnet.demos.ftp --server HOST:PORT --user NAME [--get FILE] [--put FILE]

By default the demo starts aioftp's server on 127.0.0.1 over a temporary directory,
then lists it, reads a text file line by line, downloads with the tutorial's Writer
and with a progress bar, uploads, verifies checksums, resumes an interrupted
download and runs five downloads at once on one event loop.  With --server it
lists a real server's directory (and --get/--put a file); the password comes from
$FTP_PASSWORD or a prompt, never from the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import getpass
import hashlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from .. import run
from ..errors import ConfigurationError
from ..ftp import FTPClient, FTPServer, RemoteEntry, RichTransfers, TransferProgress
from ..text import printable
from . import _cli as cli


class Writer:
    """The tutorial's slide, unchanged: a callable that writes each chunk to a file."""

    def __init__(self, pathname: Path) -> None:
        self.f = open(pathname, "wb")  # noqa: SIM115 - closed by close(), as on the slide

    def __call__(self, data: bytes) -> None:
        self.f.write(data)

    def close(self) -> None:
        self.f.close()


class Interrupted(Exception):
    """Stands in for Ctrl-C or a dropped connection half-way through a download."""


def listing_line(entry: RemoteEntry, width: int) -> str:
    """One listing entry for the terminal: type and name come from the server, so
    control characters in them are shown escaped, never acted on."""
    return f"  {printable(entry.type):4} {entry.size or 0:>{width},}  {printable(entry.name)}"


def sha256(path: Path) -> str:
    """The first 16 hex digits of a local file's SHA-256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


async def tour(client: Callable[[], FTPClient], work: Path) -> None:
    """Every verb once against the embedded server (its files are in work/'served')."""
    served = work / "served"
    async with client() as ftp:
        for entry in sorted(await ftp.list(), key=lambda e: e.name):
            print(listing_line(entry, 10))
        await ftp.retrieve_lines("README.txt", lambda line: print(f"  | {printable(line)}"))
        writer = Writer(work / "copy.bin")
        await ftp.retrieve("big.bin", writer)  # retrbinary, callback = the Writer
        writer.close()
        print(f"  retrbinary with Writer: sha256 {sha256(work / 'copy.bin')}")
        with RichTransfers() as bars:
            got = await ftp.download("big.bin", work / "big.bin", progress=bars.callback)
            await ftp.store("upload.bin", work / "big.bin", progress=bars.callback)
        print(f"  downloaded {got.size:,} bytes, sha256 {got.sha256[:16]}, ", end="")
        print(f"uploaded copy sha256 {sha256(served / 'upload.bin')}")

    def stop_at_40_percent(state: TransferProgress) -> None:
        if state.total and state.done >= 0.4 * state.total and not state.finished:
            raise Interrupted

    try:
        async with client() as ftp:
            await ftp.download("big.bin", work / "again.bin", progress=stop_at_40_percent)
    except Interrupted:
        print(f"  interrupted at {(work / 'again.bin.part').stat().st_size:,} bytes")
    async with client() as ftp:
        again = await ftp.download("big.bin", work / "again.bin", resume=True)
    print(f"  resumed from {again.resumed_from:,} bytes: sha256 {again.sha256[:16]}")

    async def fetch(name: str) -> str:
        async with client() as ftp:
            return (await ftp.download(name, work / name)).sha256

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(fetch(f"sample{n}.bin")) for n in range(1, 6)]
    same = all(
        t.result() == hashlib.sha256((served / f"sample{n}.bin").read_bytes()).hexdigest()
        for n, t in enumerate(tasks, start=1)
    )
    print(f"  5 downloads at once on one loop: {'all checksums match' if same else 'MISMATCH'}")


async def embedded(big_mb: int) -> None:
    """Serve sample files from a temporary directory and run the tour against them."""
    with tempfile.TemporaryDirectory(prefix="asyncnet-ftp-") as tmp:
        work = Path(tmp)
        served = work / "served"
        served.mkdir()
        (served / "README.txt").write_text("Network programming in Python\nFTP, async\n")
        (served / "big.bin").write_bytes(os.urandom(big_mb * 1024 * 1024))
        for n in range(1, 6):
            (served / f"sample{n}.bin").write_bytes(os.urandom(512 * 1024))
        password = os.urandom(8).hex()
        async with FTPServer(served, users={"demo": password}) as server:
            host, port = server.address
            print(f"ftp: embedded aioftp server on {host}:{port} over {served}")
            await tour(
                functools.partial(FTPClient, host, port, user="demo", password=password), work
            )


async def remote(args: argparse.Namespace, password: str) -> None:
    """List a real server's directory; --get / --put one file with a progress bar."""
    host, port = args.server
    async with FTPClient(
        host,
        port,
        user=args.user,
        password=password,
        tls=args.tls,
        connect_timeout=args.timeout,
        command_timeout=args.timeout,
    ) as ftp:
        for entry in await ftp.list(args.dir):
            print(listing_line(entry, 12))
        with RichTransfers() as bars:
            if args.get:
                got = await ftp.download(
                    args.get, Path(Path(args.get).name), resume=True, progress=bars.callback
                )
                print(f"  {got.path}: {got.size:,} bytes, sha256 {got.sha256}")
            if args.put:
                sent = await ftp.store(Path(args.put).name, Path(args.put), progress=bars.callback)
                print(f"  stored {sent:,} bytes as {Path(args.put).name}")


def server_address(text: str) -> tuple[str, int]:
    """An argparse ``type=``: ``HOST:PORT`` (``[::1]:2121`` for IPv6)."""
    host, colon, port = text.rpartition(":")
    if not colon or not host.strip("[]"):
        raise argparse.ArgumentTypeError(f"wants HOST:PORT, not {text!r}")
    return host.strip("[]"), cli.port_number(port)


def main(argv: list[str] | None = None) -> int:
    """Run the embedded tour, or talk to --server."""
    parser = cli.parser("python -m asyncnet.demos.ftp", __doc__)
    parser.add_argument(
        "--server", type=server_address, metavar="HOST:PORT", help="a real FTP server instead"
    )
    parser.add_argument("--user", default="anonymous", help="login name (default anonymous)")
    parser.add_argument("--tls", action="store_true", help="explicit FTPS (AUTH TLS)")
    parser.add_argument("--dir", default="", help="directory to list (default: the login one)")
    parser.add_argument("--get", metavar="FILE", help="download FILE (resumes a .part)")
    parser.add_argument(
        "--put", type=cli.existing_file, metavar="FILE", help="upload the local FILE"
    )
    parser.add_argument("--timeout", type=cli.positive_float, default=10.0, help="seconds per step")
    parser.add_argument("--big-mb", type=cli.positive_int, default=8, help=argparse.SUPPRESS)
    return cli.main(parser, body, argv, address_flag="--server")


def body(args: argparse.Namespace) -> int:
    """The body of main(): the embedded tour, or the session with --server."""
    if args.verbose < 2:  # aioftp's server logs a traceback for each client that hangs up
        logging.getLogger("aioftp").setLevel(logging.CRITICAL)
    if not args.server:
        run(embedded(args.big_mb))
        return 0
    password = os.environ.get("FTP_PASSWORD")
    if password is None and args.user == "anonymous":
        password = "anonymous@"
    elif password is None and not sys.stdin.isatty():
        raise ConfigurationError("set $FTP_PASSWORD (no terminal to ask for the password)")
    elif password is None:
        password = getpass.getpass(f"password for {args.user}: ")
    run(remote(args, password))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
