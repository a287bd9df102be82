"""``python -m benchmarks.transfers``: FTP bulk transfers, asyncnet against ftplib.

Each server (asyncnet's embedded aioftp server, pyftpdlib, vsftpd; plain and FTPS
where the server can) runs as its own process on 127.0.0.1, so neither client shares
a GIL with it.  For every server the same file is then downloaded and uploaded by
ftplib (blocking, in this process) and by asyncnet (one event loop, in this process),
the two interleaved in each round so that whatever else the machine does falls on
both, and each side hashes every byte (sha256) as it goes.  The table shows medians.

Compared, on one logged-in session each:

* ``retrieve``: ftplib ``retrbinary(blocksize=64 KiB)`` against ``FTPClient.retrieve``;
* ``download``: ftplib writing ``.part``, fsync, rename (what a careful ftplib script
  does) against ``FTPClient.download`` (SIZE/MLST, ``.part``, sha256, fsync, rename);
* ``store``: ftplib ``storbinary(blocksize=64 KiB)`` plus ``size()`` against
  ``FTPClient.store`` (which checks SIZE after the transfer).

Targets: asyncnet >= 1.0x ftplib in plain FTP, >= 0.9x over FTPS and for
``download``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ftplib
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

MiB = 1024 * 1024
PASSWORD = "bench-secret"
BLOCK = 64 * 1024
TARGETS = {"plain": 1.0, "ftps": 0.9, "download": 0.9}
VSFTPD = shutil.which("vsftpd") or next(
    (p for p in ("/usr/sbin/vsftpd", "/sbin/vsftpd") if os.path.exists(p)), None
)

EMBEDDED_MAIN = """
import asyncio, os, sys
from asyncnet.ftp import FTPServer

async def main():
    async with FTPServer(sys.argv[1], users={"guest": os.environ["BENCH_PASSWORD"]}) as s:
        print(s.address[1], flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""

PYFTPDLIB_MAIN = """
import os, sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
from pyftpdlib.servers import FTPServer

authorizer = DummyAuthorizer()
authorizer.add_user("guest", os.environ["BENCH_PASSWORD"], sys.argv[1], perm="elradfmwMT")
handler = FTPHandler
if len(sys.argv) > 2:
    handler = TLS_FTPHandler
    handler.certfile = sys.argv[2]
    handler.tls_control_required = True
    handler.tls_data_required = True
handler.authorizer = authorizer
server = FTPServer(("127.0.0.1", 0), handler)
print(server.address[1], flush=True)
server.serve_forever(timeout=0.5)
"""

VSFTPD_CONF = """\
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port={port}
background=NO
run_as_launching_user=YES
anonymous_enable=YES
local_enable=NO
no_anon_password=YES
anon_root={root}
write_enable=YES
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_other_write_enable=YES
anon_world_readable_only=NO
anon_umask=022
seccomp_sandbox=NO
xferlog_enable=NO
pasv_enable=YES
connect_from_port_20=NO
check_shell=NO
"""

VSFTPD_TLS = """\
ssl_enable=YES
rsa_cert_file={pem}
rsa_private_key_file={pem}
allow_anon_ssl=YES
force_anon_logins_ssl=YES
force_anon_data_ssl=YES
"""


@dataclass
class Server:
    """One running server: where it is, how to log in, whether it wants FTPS."""

    name: str
    host: str
    port: int
    user: str
    tls: bool
    process: subprocess.Popen[bytes]


@dataclass
class Row:
    """One line of the table: a server, an operation, both sides' timings."""

    server: str
    operation: str
    ftplib_s: list[float] = field(default_factory=list)
    asyncnet_s: list[float] = field(default_factory=list)

    @property
    def target(self) -> float:
        """The ratio this row must reach."""
        if self.operation == "download":
            return TARGETS["download"]
        return TARGETS["ftps"] if self.server.endswith("ftps") else TARGETS["plain"]

    def ratio(self) -> float:
        """asyncnet's speed over ftplib's (above 1: asyncnet is faster)."""
        return statistics.median(self.ftplib_s) / statistics.median(self.asyncnet_s)


# -- servers ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _port_from(process: subprocess.Popen[bytes], what: str) -> int:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.strip().isdigit():
        _stop(process)
        raise RuntimeError(f"{what} did not start (printed {line[:200]!r})")
    return int(line)


def _python_server(name: str, script: str, args: Sequence[str], tls: bool) -> Server:
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "BENCH_PASSWORD": PASSWORD},
    )
    return Server(name, "127.0.0.1", _port_from(process, name), "guest", tls, process)


def _vsftpd(root: Path, workdir: Path, pem: Path | None) -> Server:
    assert VSFTPD is not None
    name = "vsftpd-ftps" if pem else "vsftpd"
    for _ in range(3):
        port = _free_port()
        conf = workdir / f"{name}.conf"
        text = VSFTPD_CONF.format(port=port, root=root)
        if pem is not None:
            text += VSFTPD_TLS.format(pem=pem)
        conf.write_text(text)
        process = subprocess.Popen([VSFTPD, str(conf)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except ConnectionRefusedError:
                time.sleep(0.02)  # vsftpd has no readiness signal to wait on
                continue
            return Server(name, "127.0.0.1", port, "anonymous", pem is not None, process)
        _stop(process)
    raise RuntimeError("vsftpd did not start on a free port after 3 tries")


def start_servers(
    wanted: set[str], root: Path, workdir: Path, pem: Path
) -> Iterator[Callable[[], Server]]:
    """Starters for each wanted server that can run here, in table order."""
    if "embedded" in wanted:
        yield lambda: _python_server("embedded", EMBEDDED_MAIN, [str(root)], False)
    if "pyftpdlib" in wanted and importlib.util.find_spec("pyftpdlib") is not None:
        yield lambda: _python_server("pyftpdlib", PYFTPDLIB_MAIN, [str(root)], False)
        yield lambda: _python_server("pyftpdlib-ftps", PYFTPDLIB_MAIN, [str(root), str(pem)], True)
    if "vsftpd" in wanted and VSFTPD is not None:
        yield lambda: _vsftpd(root, workdir, None)
        yield lambda: _vsftpd(root, workdir, pem)


# -- ftplib ------------------------------------------------------------------------------


class _ReusingFTP_TLS(ftplib.FTP_TLS):
    """ftplib's FTPS with data connections resuming the control session.

    vsftpd (require_ssl_reuse) refuses data connections that do not; ftplib has no
    option for it, so this is the usual recipe.
    """

    def ntransfercmd(self, cmd: str, rest: Any = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            conn = self.context.wrap_socket(
                conn,
                server_hostname=self.host,
                session=self.sock.session,  # type: ignore[union-attr]
            )
        return conn, size


def ftplib_session(server: Server, context: ssl.SSLContext) -> ftplib.FTP:
    """A logged-in ftplib session in binary mode (protected data under FTPS)."""
    if server.tls:
        ftp: ftplib.FTP = _ReusingFTP_TLS(context=context)
    else:
        ftp = ftplib.FTP()
    ftp.connect(server.host, server.port, timeout=30)
    ftp.login(server.user, PASSWORD)
    if isinstance(ftp, ftplib.FTP_TLS):
        ftp.prot_p()
    ftp.voidcmd("TYPE I")
    return ftp


class HashingReader:
    """A binary file that hashes what is read from it (the upload's on-the-fly sha256)."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        """Read and hash."""
        data = self.file.read(size)
        self.hash.update(data)
        return data


def ftplib_retrieve(ftp: ftplib.FTP, name: str, _: Path) -> str:
    """retrbinary, hashing each block."""
    digest = hashlib.sha256()
    ftp.retrbinary(f"RETR {name}", digest.update, blocksize=BLOCK)
    return digest.hexdigest()


def ftplib_download(ftp: ftplib.FTP, name: str, dest: Path) -> str:
    """SIZE, then RETR into ``.part`` with sha256, fsync, rename, fsync the directory."""
    try:
        size = ftp.size(name)
    except ftplib.error_perm:  # no SIZE (aioftp's server): check nothing, like asyncnet
        size = None
    digest = hashlib.sha256()
    part = dest.with_name(dest.name + ".part")
    with open(part, "wb") as file:

        def write(block: bytes) -> None:
            file.write(block)
            digest.update(block)

        ftp.retrbinary(f"RETR {name}", write, blocksize=BLOCK)
        file.flush()
        os.fsync(file.fileno())
        if size is not None and file.tell() != size:
            raise RuntimeError(f"ftplib: {file.tell()} bytes, SIZE said {size}")
    os.replace(part, dest)
    fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return digest.hexdigest()


def ftplib_store(ftp: ftplib.FTP, name: str, source: Path) -> str:
    """storbinary from a hashing reader, then SIZE (as asyncnet's store checks it)."""
    with open(source, "rb") as file:
        reader = HashingReader(file)
        ftp.storbinary(f"STOR {name}", reader, blocksize=BLOCK)
    try:
        stored = ftp.size(name)
    except ftplib.error_perm:  # no SIZE (aioftp's server): nothing to check
        stored = source.stat().st_size
    if stored != source.stat().st_size:
        raise RuntimeError("ftplib: the stored size differs")
    return reader.hash.hexdigest()


# -- asyncnet ----------------------------------------------------------------------------


async def asyncnet_retrieve(ftp: Any, name: str, _: Path) -> str:
    """FTPClient.retrieve, hashing each block."""
    digest = hashlib.sha256()
    await ftp.retrieve(name, digest.update)
    return digest.hexdigest()


async def asyncnet_download(ftp: Any, name: str, dest: Path) -> str:
    """FTPClient.download: SIZE/MLST, .part, sha256, fsync, rename."""
    result = await ftp.download(name, dest)
    return str(result.sha256)


async def asyncnet_store(ftp: Any, name: str, source: Path) -> str:
    """FTPClient.store from a hashing reader (SIZE checked after)."""
    with open(source, "rb") as file:  # noqa: ASYNC230 - the benchmark's own file
        reader = HashingReader(file)
        await ftp.store(name, reader)
    return reader.hash.hexdigest()


# -- the run -----------------------------------------------------------------------------


def measure(
    servers: list[Callable[[], Server]],
    *,
    size: int,
    repeats: int,
    root: Path,
    workdir: Path,
    context: ssl.SSLContext,
    operations: Sequence[str],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> list[Row]:
    """Run every operation ``repeats`` times on each side, interleaved, per server."""
    from asyncnet.ftp import FTPClient

    source = workdir / "upload.bin"
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    sides: dict[str, tuple[Callable[..., str], Callable[..., Any]]] = {
        "retrieve": (ftplib_retrieve, asyncnet_retrieve),
        "download": (ftplib_download, asyncnet_download),
        "store": (ftplib_store, asyncnet_store),
    }
    rows: list[Row] = []
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        for start in servers:
            server = start()
            try:
                client = FTPClient(
                    server.host,
                    server.port,
                    user=server.user,
                    password=PASSWORD,
                    tls=server.tls,
                    ssl_context=context if server.tls else None,
                )
                runner.run(client.start())
                ftp = ftplib_session(server, context)
                try:
                    for operation in operations:
                        row = Row(server.name, operation)
                        blocking, asynchronous = sides[operation]
                        for index in range(repeats):
                            dest = workdir / "dest.bin"
                            # Alternate who goes first, so neither always finds the
                            # page cache warmer.
                            order = ("ftplib", "asyncnet") if index % 2 else ("asyncnet", "ftplib")
                            for side in order:
                                began = time.perf_counter()
                                if side == "ftplib":
                                    digest = blocking(
                                        ftp, _name(operation, side), _io(operation, source, dest)
                                    )
                                else:
                                    digest = runner.run(
                                        asynchronous(
                                            client,
                                            _name(operation, side),
                                            _io(operation, source, dest),
                                        )
                                    )
                                took = time.perf_counter() - began
                                if digest != expected:
                                    raise RuntimeError(f"{side} {operation}: sha256 differs")
                                (row.ftplib_s if side == "ftplib" else row.asyncnet_s).append(took)
                                dest.unlink(missing_ok=True)
                        rows.append(row)
                        print(_line(row, size), flush=True)
                finally:
                    with contextlib.suppress(Exception):
                        ftp.quit()
                    runner.run(client.stop())
            finally:
                _stop(server.process)
    return rows


def _name(operation: str, side: str) -> str:
    return f"up-{side}.bin" if operation == "store" else "data.bin"


def _io(operation: str, source: Path, dest: Path) -> Path:
    return source if operation == "store" else dest


def _mbps(seconds: list[float], size: int) -> float:
    return size / statistics.median(seconds) / 1e6


def _line(row: Row, size: int) -> str:
    ratio = row.ratio()
    mark = "met" if ratio >= row.target else "MISSED"
    return (
        f"| {row.server:<15} | {row.operation:<8} | {_mbps(row.ftplib_s, size):>8.0f} "
        f"| {_mbps(row.asyncnet_s, size):>8.0f} | {ratio:>5.2f}x | >= {row.target:.1f}x {mark:<6} |"
    )


HEADER = (
    "| server          | op       | ftplib MB/s | asyncnet MB/s | ratio | target |\n"
    "|---|---|---:|---:|---:|---|"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print the table (and write JSON when asked)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.transfers",
        description="FTP download/upload throughput: asyncnet's FTPClient against ftplib.",
    )
    parser.add_argument("--size-mib", type=int, default=20, help="file size (default %(default)s)")
    parser.add_argument(
        "--repeats", type=int, default=7, help="rounds per row (default %(default)s)"
    )
    parser.add_argument(
        "--server",
        action="append",
        choices=("embedded", "pyftpdlib", "vsftpd"),
        help="server to run against (repeatable; default all that are installed)",
    )
    parser.add_argument(
        "--op",
        action="append",
        choices=("retrieve", "download", "store"),
        help="operation (repeatable; default all)",
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="asyncnet's event loop (default %(default)s; the demos use uvloop when installed)",
    )
    parser.add_argument("--json", type=Path, help="also write every timing to this file")
    args = parser.parse_args(argv)
    if args.size_mib <= 0 or args.repeats <= 0:
        parser.error("--size-mib and --repeats must be positive")

    try:
        import trustme
    except ImportError:
        parser.error("trustme is needed for the FTPS rows: pip install trustme")

    loop_factory = None
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            parser.error("--loop uvloop: uvloop is not installed (pip install 'asyncnet[speed]')")
        loop_factory = uvloop.new_event_loop

    with tempfile.TemporaryDirectory(prefix="bench-ftp-") as tmp:
        workdir = Path(tmp)
        root = workdir / "root"
        root.mkdir()
        data = os.urandom(args.size_mib * MiB)
        (root / "data.bin").write_bytes(data)
        (workdir / "upload.bin").write_bytes(data)
        ca = trustme.CA()
        pem = workdir / "server.pem"
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
        context = ssl.create_default_context()
        ca.configure_trust(context)
        wanted = set(args.server or ("embedded", "pyftpdlib", "vsftpd"))
        print(
            f"{args.size_mib} MiB, median of {args.repeats}, sha256 on both sides, "
            f"asyncnet on {args.loop}, {os.cpu_count()} CPUs"
            f"{'' if VSFTPD else ' (vsftpd not installed)'}"
        )
        print(HEADER, flush=True)
        rows = measure(
            list(start_servers(wanted, root, workdir, pem)),
            size=args.size_mib * MiB,
            repeats=args.repeats,
            root=root,
            workdir=workdir,
            context=context,
            operations=args.op or ("retrieve", "download", "store"),
            loop_factory=loop_factory,
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                [{**asdict(r), "ratio": r.ratio(), "target": r.target} for r in rows], indent=1
            )
        )
    missed = [r for r in rows if r.ratio() < r.target]
    print(f"targets: {len(rows) - len(missed)} of {len(rows)} met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
