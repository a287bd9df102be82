"""The tutorial's FTP slides (ftplib's retrbinary, retrlines, storbinary, ftpStream), async.

    python -m asyncnet.demos.ftp                     # an embedded server over sample files
    python -m asyncnet.demos.ftp --server HOST:PORT --user NAME [--dir D] [--get F] [--put F]
    python -m asyncnet.demos.ftp --server HOST:990 --tls implicit --cafile ca.pem --active
    python -m asyncnet.demos.ftp --serve DIR --user NAME [--port 2121] [--anonymous]

By default the demo starts aioftp's server on 127.0.0.1 over a temporary directory,
then lists it, reads a text file line by line, downloads with the tutorial's Writer
and with a progress bar, uploads, verifies checksums, resumes an interrupted
download and runs five downloads at once on one event loop.  With --server it
lists a real server's directory (and --get/--put a file, in --dir); the password
comes from $FTP_PASSWORD or a prompt, never from the command line.

With --serve it is an FTP server for any client (curl, ftplib, FileZilla) until
Ctrl-C: DIR for --user NAME, whose password comes from $ASYNCNET_FTP_PASSWORD or a
prompt (never the command line), and read-only for anonymous users with
--anonymous; with --cert (and --key) it offers explicit FTPS, which --user must
then use.  It listens on 127.0.0.1 unless --host or --all-interfaces says otherwise,
and prints the URL to connect to.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import getpass
import hashlib
import os
import posixpath
import ssl
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .. import run
from ..errors import ConfigurationError
from ..text import printable
from . import _cli as cli

if TYPE_CHECKING:  # asyncnet.ftp (aioftp) is imported where it runs: --help stays quick
    from ..ftp import FTPClient, FTPServer, RemoteEntry, TransferProgress

SERVE_PORT = 2121
"""--serve's default port (as pyftpdlib's): 21 needs privileges."""

PASSWORD_VARIABLE = "ASYNCNET_FTP_PASSWORD"
"""Where --serve reads --user's password from (else a prompt on a terminal)."""


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
    from ..ftp import RichTransfers

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
    from ..ftp import FTPClient, FTPServer

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
    from ..ftp import FTPClient, RichTransfers

    host, port = args.server
    async with FTPClient(
        host,
        port,
        user=args.user,
        password=password,
        tls=args.tls or False,
        ssl=cli.tls_context(args),
        passive=not args.active,
        connect_timeout=args.timeout,
        command_timeout=args.timeout,
    ) as ftp:
        for entry in await ftp.list(args.dir):
            print(listing_line(entry, 12))
        with RichTransfers() as bars:
            if args.get:
                source = posixpath.join(args.dir, args.get)  # from --dir, as --put goes into it
                got = await ftp.download(
                    source, Path(posixpath.basename(args.get)), resume=True, progress=bars.callback
                )
                print(f"  {got.path}: {got.size:,} bytes, sha256 {got.sha256}")
            if args.put:
                target = posixpath.join(args.dir, Path(args.put).name)  # into --dir
                sent = await ftp.store(target, Path(args.put), progress=bars.callback)
                print(f"  stored {sent:,} bytes as {printable(target)}")


def served_directory(text: str) -> Path:
    """An argparse ``type=``: a directory that exists (--serve's DIR)."""
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory")
    return path


def serve_password(user: str) -> str:
    """--user's password: $ASYNCNET_FTP_PASSWORD, else asked twice on a terminal."""
    password = os.environ.get(PASSWORD_VARIABLE)
    if password is None:
        if not sys.stdin.isatty():
            raise ConfigurationError(
                f"set ${PASSWORD_VARIABLE} to the password for {user} "
                "(no terminal to ask on), or serve read-only with --anonymous alone"
            )
        password = getpass.getpass(f"password for {user} (to set): ")
        if password != getpass.getpass(f"password for {user} (again): "):
            raise ConfigurationError("the two passwords differ: run again")
    if not password:
        raise ConfigurationError(f"an empty password for {user}: set ${PASSWORD_VARIABLE}")
    return password


def server_tls(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """--cert/--key: the server's certificate for explicit FTPS (None without --cert)."""
    if cert is None:
        if key is not None:
            raise cli.UsageError("--key goes with --cert (the certificate it belongs to)")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:  # ssl.SSLError: not PEM, or key and cert differ
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        raise ConfigurationError(
            f"--cert {cert}{f' --key {key}' if key else ''}: cannot load them ({reason}); "
            "--cert wants a PEM certificate chain, --key its private key (or both in --cert)"
        ) from exc
    return context


def serve(args: argparse.Namespace) -> int:
    """--serve: FTPServer over DIR until Ctrl-C (or kill), with the URL printed."""
    from ..ftp import FTPServer

    user = None if args.user == "anonymous" else args.user
    if user is None and not args.anonymous:
        raise cli.UsageError("--serve needs --user NAME, or --anonymous for read-only access")
    users = {user: serve_password(user)} if user is not None else {}
    server = FTPServer(
        args.serve,
        users=users,
        anonymous=args.anonymous,
        writable=not args.read_only,
        tls=server_tls(args.cert, args.key),
        **cli.server_options(args),
    )

    def ready(servers: Sequence[FTPServer]) -> None:
        host, port = servers[0].address
        who = [f"user {printable(user)}"] if user is not None else []
        who += ["anonymous (read-only)"] if args.anonymous else []
        shown = f"[{host}]" if ":" in host else host
        where = f"ftp://{shown}:{port}/"
        if args.all_interfaces:
            where = f"port {port} on every interface (ftp://<this host>:{port}/)"
        tls = ", explicit FTPS (AUTH TLS)" if args.cert else ""
        print(
            f"ftp: serving {args.serve} on {where} for {' and '.join(who)}{tls} (Ctrl-C to stop)",
            flush=True,
        )

    return cli.serve(server, name="ftp", ready=ready)


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
    parser.add_argument(
        "--serve", type=served_directory, metavar="DIR", help="serve DIR over FTP until Ctrl-C"
    )
    parser.add_argument(
        "--user",
        default="anonymous",
        metavar="NAME",
        help="login name (default anonymous); with --serve, the user who may log in",
    )
    parser.add_argument(
        "--anonymous", action="store_true", help="--serve: let anonymous users in, read-only"
    )
    parser.add_argument(
        "--read-only", action="store_true", help="--serve: --user may not change files either"
    )
    parser.add_argument(
        "--cert",
        type=cli.existing_file,
        metavar="FILE",
        help="--serve: offer explicit FTPS with this PEM certificate (chain); "
        "--server: present it as the client's certificate",
    )
    parser.add_argument(
        "--key", type=cli.existing_file, metavar="FILE", help="--cert's private key (PEM)"
    )
    parser.add_argument(
        "--cafile",
        type=cli.existing_file,
        metavar="FILE",
        help="--server: also trust the CA certificates in FILE (PEM), besides the system's",
    )
    cli.add_server_arguments(parser, port=SERVE_PORT)
    parser.add_argument(
        "--tls",
        nargs="?",
        const="explicit",
        choices=["explicit", "implicit"],
        help="FTPS: explicit (AUTH TLS, the default with a bare --tls) or implicit "
        "(TLS from the first byte, usually port 990)",
    )
    parser.add_argument(
        "--active",
        action="store_true",
        help="active mode: the server connects back to us (EPRT, else PORT)",
    )
    parser.add_argument("--dir", default="", help="directory to list (default: the login one)")
    parser.add_argument("--get", metavar="FILE", help="download FILE (resumes a .part)")
    parser.add_argument(
        "--put", type=cli.existing_file, metavar="FILE", help="upload the local FILE"
    )
    parser.add_argument("--timeout", type=cli.positive_float, default=10.0, help="seconds per step")
    parser.add_argument("--big-mb", type=cli.positive_int, default=8, help=argparse.SUPPRESS)
    return cli.main(parser, body, argv, address_flag="--server")


def body(args: argparse.Namespace) -> int:
    """The body of main(): the embedded tour, the session with --server, or --serve."""
    serving_flags = args.anonymous or args.read_only or args.all_interfaces
    serving_flags = serving_flags or args.host != cli.DEFAULT_HOST or args.port != SERVE_PORT
    certificate = args.cert is not None or args.key is not None
    client_flags = args.tls is not None or args.active or args.cafile is not None
    if args.serve and args.server:
        raise cli.UsageError("--serve runs a server, --server talks to one: pass one of them")
    if args.serve:
        if client_flags:
            raise cli.UsageError("--tls, --active and --cafile go with --server")
        return serve(args)
    if serving_flags:
        raise cli.UsageError(
            "--host, --port, --all-interfaces, --anonymous and --read-only go with --serve"
        )
    if (certificate or client_flags) and not args.server:
        raise cli.UsageError(
            "--cert, --key, --tls, --active and --cafile go with --server or --serve"
        )
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
