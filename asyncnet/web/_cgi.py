"""CGIHTTPServer's successor: run CGI scripts (RFC 3875) from one directory, with limits.

``/cgi-bin/NAME/extra/path?query`` runs the executable ``cgi_dir/NAME`` directly
(no shell) with the RFC 3875 environment, the request body on its stdin, and the
server's own environment *not* inherited (only ``PATH`` and the locale), so no
secret leaks into a script and no ``Proxy:`` request header becomes ``HTTP_PROXY``
(httpoxy).  Request headers whose names hold ``_`` are not passed at all (as Apache
and nginx do): ``X_Foo`` would otherwise become the same ``HTTP_X_FOO`` as ``X-Foo``.

``PATH_INFO`` (``/extra/path``) is percent-decoded once and its dot segments applied;
one that climbs above its root is refused (404), as is an encoded slash (404) or a
control character (400), so ``PATH_TRANSLATED`` (the document root plus
``PATH_INFO``) always names a path under the document root.

The script's output starts with CGI headers (``Content-Type``, ``Status``,
``Location``), then a blank line, then the body, which is streamed to the client up
to ``max_output`` bytes, each chunk as :class:`PipeReader` read it from the pipe
(bounded: a script that outruns its client blocks in ``write()``).  Folded header
lines (RFC 9112 obs-fold) are a broken response (502).  Limits:

* ``time_limit`` seconds per request, ``max_output`` bytes of output;
* ``max_scripts`` running at once per server and ``max_scripts_per_peer`` per client
  host (an IPv6 client by its /64); beyond either, ``503`` with ``Retry-After``;
* each script runs in a process group of its own, and the whole group is killed when
  its request ends (output complete, time limit, output limit, or the client gone),
  so a background child cannot outlive the request, or the limits above.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import re
import signal
import stat
import time
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

from aiohttp import web

from .._peers import peer_key
from .._ratelimit import RateLimitedLog
from ..errors import PeerProtocolError
from ._debug import escape_log
from ._errors import WebConfigurationError, WebError

__all__ = ["CGIRunner", "parse_cgi_headers"]

logger = logging.getLogger("asyncnet.web")

MAX_HEADER_BLOCK = 64 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP field name (RFC 9110 5.1)
RETRY_AFTER = 1
"""Seconds a client refused for too many running scripts is asked to wait."""
_SKIPPED_HEADERS = {"PROXY", "CONTENT_TYPE", "CONTENT_LENGTH", "AUTHORIZATION"}


class CGIError(WebError, PeerProtocolError):
    """The script's output broke the CGI rules (reported to the client as 502).

    The script is the peer here: its header block is parsed like any other input,
    so a bad one is a protocol error of the web tree.
    """


def parse_cgi_headers(block: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    """Status, reason and headers from a script's header block (LF or CRLF lines).

    Raises :class:`CGIError` for a line without a colon or with a bad field name, a
    folded line (one starting with a space or a tab), a bad ``Status`` or a response
    with neither ``Content-Type`` nor ``Location``.
    """
    status, reason = 200, "OK"
    headers: list[tuple[str, str]] = []
    for raw in block.split(b"\n"):
        line = raw.rstrip(b"\r").decode("latin-1")
        if not line:
            continue
        if line[0] in " \t":
            # A continuation of the previous line (obs-fold).  Refused rather than
            # unfolded: RFC 9112 deprecates it, a script that folds is broken, and
            # a 502 shows that, where unfolding would guess at what it meant.
            raise CGIError(f"folded header line {line[:80]!r}")
        name, colon, value = line.partition(":")
        name, value = name.rstrip(), value.strip()
        if not colon or not _TOKEN.match(name):
            raise CGIError(f"bad header line {line[:80]!r}")
        if any(ord(c) < 0x20 and c != "\t" for c in value):
            raise CGIError(f"control character in header {name!r}")
        if name.lower() == "status":
            code, _, text = value.partition(" ")
            if not (code.isdigit() and len(code) == 3 and 100 <= int(code) < 600):
                raise CGIError(f"bad Status {value[:40]!r}")
            status, reason = int(code), text or "Status"
        else:
            headers.append((name, value))
    names = {name.lower() for name, _ in headers}
    if "location" in names and status == 200:
        status, reason = 302, "Found"
    if "content-type" not in names and "location" not in names:
        raise CGIError("no Content-Type in the script's headers")
    return status, reason, headers


class CGIRunner:
    """Runs scripts from ``cgi_dir``; route ``/cgi-bin/{tail:.*}`` to its :meth:`handle`.

    ``document_root`` is what ``PATH_TRANSLATED`` maps ``PATH_INFO`` under (default:
    the parent of ``cgi_dir``).  At most ``max_scripts`` scripts run at once, and at
    most ``max_scripts_per_peer`` for one client host; a request beyond either gets
    ``503`` with ``Retry-After``.  A slot is held until the script's whole process
    group is gone, so a response that has ended has freed its slot.
    """

    def __init__(
        self,
        cgi_dir: str | os.PathLike[str],
        *,
        time_limit: float = 30.0,
        max_output: int = 10 * 1024 * 1024,
        max_body: int = 1024 * 1024,
        max_scripts: int = 16,
        max_scripts_per_peer: int = 4,
        document_root: str | os.PathLike[str] | None = None,
        url_prefix: str = "/cgi-bin",
        server_software: str = "asyncnet",
    ) -> None:
        if max_scripts < 1 or max_scripts_per_peer < 1:
            raise WebConfigurationError(
                "CGI: max_scripts and max_scripts_per_peer must be at least 1, "
                f"not {max_scripts!r} and {max_scripts_per_peer!r}"
            )
        self.cgi_dir = Path(cgi_dir).resolve()
        self.document_root = (
            Path(document_root).resolve() if document_root is not None else self.cgi_dir.parent
        )
        self.time_limit = time_limit
        self.max_output = max_output
        self.max_body = max_body
        self.max_scripts = max_scripts
        self.max_scripts_per_peer = max_scripts_per_peer
        self.url_prefix = url_prefix.rstrip("/")
        self.server_software = server_software
        self.refused = 0
        """Requests answered 503 because too many scripts were running."""
        self._running: collections.Counter[str] = collections.Counter()
        self._refusals = RateLimitedLog()
        self._reaping: set[asyncio.Future[None]] = set()

    @property
    def running(self) -> int:
        """Scripts started and not yet reaped (their process groups killed)."""
        return self._running.total()

    def owns(self, path: Path) -> bool:
        """Whether ``path`` (resolved) is ``cgi_dir`` or lies under it.

        Compared by device and inode, not by name, so that no other spelling of the
        directory (a case-insensitive filesystem's, a symlink's) hides it: the
        static route asks this before serving a file, lest it serve a script's source.
        """
        try:
            scripts = os.stat(self.cgi_dir)
        except OSError:
            return False
        for candidate in (path, *path.parents):
            try:
                found = os.stat(candidate)
            except OSError:
                continue
            if (found.st_dev, found.st_ino) == (scripts.st_dev, scripts.st_ino):
                return True
        return False

    def locate(self, raw_path: str) -> tuple[Path, str, str]:
        """(script path, script name, PATH_INFO) for a raw (still encoded) request path.

        Each segment is percent-decoded once, here; empty segments are dropped.
        Raises ``HTTPNotFound`` for anything but an executable's name inside
        ``cgi_dir`` followed by a PATH_INFO that stays under its root.
        """
        path = raw_path.split("?", 1)[0]
        segments = _decoded_segments(path)
        prefix = _decoded_segments(self.url_prefix)
        if segments[: len(prefix)] != prefix or len(segments) <= len(prefix):
            raise web.HTTPNotFound()
        name, rest = segments[len(prefix)], segments[len(prefix) + 1 :]
        script, script_name = self.script_for(name)
        if not rest and not path.endswith("/"):
            return script, script_name, ""  # nothing after the name, not even a slash
        return script, script_name, _path_info(rest, trailing_slash=path.endswith("/"))

    def script_for(self, name: str) -> tuple[Path, str]:
        """(resolved path, SCRIPT_NAME) of the executable ``name`` in ``cgi_dir``."""
        if not _NAME.match(name):
            raise web.HTTPNotFound()
        path = self.cgi_dir / name
        try:
            resolved = path.resolve(strict=True)
            mode = resolved.stat().st_mode
        except (OSError, RuntimeError):
            raise web.HTTPNotFound() from None
        if resolved.parent != self.cgi_dir or not stat.S_ISREG(mode):
            raise web.HTTPNotFound()  # a symlink out of cgi-bin, a directory
        if not os.access(resolved, os.X_OK):
            raise web.HTTPForbidden(text="script is not executable")
        return resolved, f"{self.url_prefix}/{name}"

    def environment(
        self, request: web.Request, script_name: str, path_info: str, body: bytes
    ) -> dict[str, str]:
        """The RFC 3875 meta-variables for ``request`` (nothing from the server's env)."""
        host, port = _server_address(request)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": self.server_software,
            "SERVER_NAME": request.host.rsplit(":", 1)[0] if request.host else host,
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": f"HTTP/{request.version.major}.{request.version.minor}",
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": script_name,
            "PATH_INFO": path_info,
            "QUERY_STRING": request.raw_path.partition("?")[2],  # still URL-encoded (4.1.7)
            "REMOTE_ADDR": request.remote or "",
        }
        for key in ("LANG", "LC_ALL"):
            if key in os.environ:
                env[key] = os.environ[key]
        if path_info:
            # PATH_INFO has no dot segments and no slash inside a segment, so this
            # is lexically under the document root (symlinks are the script's affair).
            env["PATH_TRANSLATED"] = str(self.document_root) + path_info
        if body or request.method in ("POST", "PUT"):
            env["CONTENT_LENGTH"] = str(len(body))
        if request.content_type and "Content-Type" in request.headers:
            env["CONTENT_TYPE"] = request.headers["Content-Type"]
        for name, value in request.headers.items():
            if "_" in name:
                continue  # would share a variable with the dashed name (X_Foo, X-Foo)
            key = name.upper().replace("-", "_")
            if key in _SKIPPED_HEADERS:
                continue
            meta = f"HTTP_{key}"
            env[meta] = f"{env[meta]}, {value}" if meta in env else value
        return env

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Run the script the request names and relay its response."""
        # rel_url's raw path: still encoded, and without scheme and host in an
        # absolute-form request target (GET http://host/cgi-bin/x).
        script, script_name, path_info = self.locate(request.rel_url.raw_path)
        length = request.content_length
        if length is not None and length > self.max_body:
            raise web.HTTPRequestEntityTooLarge(max_size=self.max_body, actual_size=length)
        body = await request.read()
        env = self.environment(request, script_name, path_info, body)
        peer = peer_key(request.remote)
        self._admit(peer, script_name)
        output: PipeReader | None = None
        try:
            # The script's stdout is a pipe of our own, read by PipeReader: each
            # chunk os.read() returns goes to the client as it is, where a
            # StreamReader would copy it into its buffer and out again.
            output_fd, script_stdout = os.pipe()
            try:
                output = await PipeReader.open(output_fd)
                process = await asyncio.create_subprocess_exec(
                    str(script),
                    cwd=self.cgi_dir,
                    env=env,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=script_stdout,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,  # a process group of its own, killed as one
                )
            finally:
                os.close(script_stdout)  # the script has its copy: EOF when it is done
        except BaseException:
            if output is not None:
                output.close()
            self._release(peer)
            raise
        errors = asyncio.ensure_future(_log_stderr(process, script_name))
        try:
            return await self._relay(request, process, output, body, script_name)
        finally:
            # Reached when the output has ended, on errors, at the time limit, and
            # when aiohttp cancels the handler because the client went away: the
            # script's whole group is killed, background children included.  Reaping
            # runs in a task of its own, which a second cancellation (the client's
            # connection dropping while we wait) cannot cut short; aclose() waits
            # for what is left, so no pipe or task outlives the server.  A normal
            # response ends (aiohttp writes its end after we return) only once the
            # script is reaped and its slot free, so a client that sends its next
            # request then is not refused.
            _kill(process)
            output.close()
            reaping = asyncio.ensure_future(self._reap(process, errors, peer))
            self._reaping.add(reaping)
            reaping.add_done_callback(self._reaped)
            await asyncio.shield(reaping)

    def _admit(self, peer: str, script_name: str) -> None:
        """Take a slot for ``peer``, or refuse the request with 503."""
        if self.running < self.max_scripts and self._running[peer] < self.max_scripts_per_peer:
            self._running[peer] += 1
            return
        self.refused += 1
        if since := self._refusals.hit(time.monotonic()):
            logger.warning(
                "CGI %s refused for %s: %d scripts running, %d of them for that peer "
                "(limits %d and %d per peer; %d refused since the last report)",
                script_name,
                peer,
                self.running,
                self._running[peer],
                self.max_scripts,
                self.max_scripts_per_peer,
                since,
            )
        raise web.HTTPServiceUnavailable(
            text="too many scripts running; try again shortly",
            headers={"Retry-After": str(RETRY_AFTER)},
        )

    def _release(self, peer: str) -> None:
        self._running[peer] -= 1
        if self._running[peer] <= 0:
            del self._running[peer]  # no key left behind per peer ever seen

    async def _reap(
        self, process: asyncio.subprocess.Process, errors: asyncio.Future[None], peer: str
    ) -> None:
        try:
            await _reap(process, errors)
        finally:
            self._release(peer)

    def _reaped(self, reaping: asyncio.Future[None]) -> None:
        self._reaping.discard(reaping)
        if not reaping.cancelled() and (exc := reaping.exception()) is not None:
            logger.error("CGI cleanup failed: %r", exc, exc_info=exc)

    async def aclose(self) -> None:
        """Wait until every script that was started has been reaped (server shutdown)."""
        if self._reaping:
            await asyncio.wait(set(self._reaping))

    async def _relay(
        self,
        request: web.Request,
        process: asyncio.subprocess.Process,
        output: PipeReader,
        body: bytes,
        script_name: str,
    ) -> web.StreamResponse:
        assert process.stdin is not None
        deadline = asyncio.get_running_loop().time() + self.time_limit
        try:
            async with asyncio.timeout_at(deadline):
                await _feed(process.stdin, body)
                head = await _read_head(output)
        except TimeoutError:
            logger.warning("CGI %s killed after %g s", script_name, self.time_limit)
            raise web.HTTPGatewayTimeout(text="the script took too long") from None
        if head is None:
            logger.warning("CGI %s: no header block", script_name)
            raise web.HTTPBadGateway(text="the script sent no headers")
        block, rest = head
        try:
            status, reason, headers = parse_cgi_headers(block)
        except CGIError as exc:
            logger.warning("CGI %s: %s", script_name, exc)
            raise web.HTTPBadGateway(text="the script sent bad headers") from None
        response = web.StreamResponse(status=status, reason=reason)
        for name, value in headers:
            response.headers.add(name, value)
        await response.prepare(request)
        try:
            async with asyncio.timeout_at(deadline):
                complete = await self._stream(response, output, rest, script_name)
        except TimeoutError:
            logger.warning("CGI %s killed after %g s, mid-response", script_name, self.time_limit)
            complete = False
        if not complete and request.transport is not None:
            # The status line is sent: the only way left to say "failed" is to cut
            # the connection, so the client sees a truncated response.
            request.transport.abort()
        return response

    async def _stream(
        self,
        response: web.StreamResponse,
        output: PipeReader,
        chunk: bytes,
        script_name: str,
    ) -> bool:
        """Relay the script's output to the client; False when it was cut off."""
        sent = 0
        while True:
            if not chunk:  # the header block may end exactly where a read did
                chunk = await output.read()
                if not chunk:
                    return True
            sent += len(chunk)
            if sent > self.max_output:
                logger.warning("CGI %s killed: more than %d bytes", script_name, self.max_output)
                return False
            await response.write(chunk)
            chunk = b""


class PipeReader(asyncio.Protocol):
    """The read end of a pipe, chunk by chunk, as ``os.read()`` returned each one.

    At most :attr:`HIGH_WATER` bytes wait here: beyond that the pipe is no longer
    read until :meth:`read` takes them, so a script that writes faster than the
    client reads is held back by the pipe (it blocks in ``write()``), never by
    our memory.
    """

    HIGH_WATER = 256 * 1024

    def __init__(self) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._transport: asyncio.ReadTransport | None = None
        self._paused = False

    @classmethod
    async def open(cls, fd: int) -> PipeReader:
        """A reader for ``fd`` (taken over: closed by :meth:`close`)."""
        loop = asyncio.get_running_loop()
        pipe = os.fdopen(fd, "rb", buffering=0)
        try:
            _, reader = await loop.connect_read_pipe(cls, pipe)
        except BaseException:
            pipe.close()
            raise
        return reader

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A read transport (uvloop's do not subclass asyncio.ReadTransport).
        self._transport = cast(asyncio.ReadTransport, transport)

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > self.HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        self._eof = True
        self._wake()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._wake()

    @property
    def buffered(self) -> int:
        """Bytes read from the pipe that :meth:`read` has not returned yet."""
        return self._buffered

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> bytes:
        """The next chunk the pipe gave, or ``b""`` at its end."""
        while not self._chunks:
            if self._eof:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered <= self.HIGH_WATER // 2 and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return chunk

    def close(self) -> None:
        """Stop reading and close the pipe (whatever it still holds is dropped)."""
        self._chunks.clear()
        self._buffered = 0
        self._eof = True
        if self._transport is not None:
            self._transport.close()
        self._wake()


def _decoded_segments(path: str) -> list[str]:
    """The non-empty segments of a raw path, each percent-decoded once.

    An encoded slash (``%2F``) is refused (404) rather than made a separator, as
    Apache does by default; a control character is refused (400: it cannot reach a
    script's environment).  Undecodable bytes pass through as surrogate escapes, so
    the script sees the bytes that were sent.
    """
    segments = []
    for raw in path.split("/"):
        if not raw:
            continue
        segment = unquote(raw, errors="surrogateescape")
        if "/" in segment:
            raise web.HTTPNotFound()
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in segment):
            raise web.HTTPBadRequest(text="control character in path")
        segments.append(segment)
    return segments


def _path_info(segments: list[str], *, trailing_slash: bool) -> str:
    """PATH_INFO from decoded segments, dot segments applied (RFC 3986 5.2.4).

    Raises ``HTTPNotFound`` when a ``..`` would climb above PATH_INFO's root.
    """
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if not kept:
                raise web.HTTPNotFound()
            kept.pop()
        elif segment != ".":
            kept.append(segment)
    # "/a/b/.." is the directory "/a/", as a browser would resolve it.
    ends_in_dir = trailing_slash or (bool(segments) and segments[-1] in (".", ".."))
    if not kept:
        return "/"
    return "/" + "/".join(kept) + ("/" if ends_in_dir else "")


async def _feed(stdin: asyncio.StreamWriter, body: bytes) -> None:
    """Write the request body to the script's stdin, then close it.

    A script need not read its input, and may have exited before we write.  Then
    the pipe is already closed (uvloop raises RuntimeError for a write to it, so
    we look first) or closes while we write (ConnectionError).  Neither is an
    error: the response is whatever the script printed.
    """
    if body and not stdin.transport.is_closing():
        with contextlib.suppress(ConnectionError):
            stdin.write(body)
            await stdin.drain()
    stdin.close()


def _server_address(request: web.Request) -> tuple[str, int]:
    transport = request.transport
    sockname: Any = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple):
        return str(sockname[0]), int(sockname[1])
    return "127.0.0.1", 0


async def _read_head(output: PipeReader) -> tuple[bytes, bytes] | None:
    """(header block, start of body) from the script's output, bounded."""
    buffer = b""
    while True:
        found = [(i, sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := buffer.find(sep)) >= 0]
        if found:
            index, separator = min(found)
            return buffer[:index], buffer[index + len(separator) :]
        if len(buffer) > MAX_HEADER_BLOCK:
            return None
        data = await output.read()
        if not data:
            return None
        buffer += data


async def _log_stderr(process: asyncio.subprocess.Process, script_name: str) -> None:
    assert process.stderr is not None
    seen = 0
    while line := await process.stderr.readline():
        seen += len(line)
        if seen <= 64 * 1024:  # the rest is read and dropped, so the script never blocks
            logger.warning(
                "CGI %s stderr: %s", script_name, escape_log(line.decode(errors="replace").rstrip())
            )


_REAP_SECONDS = 5.0
"""How long a killed script's pipes may take to close before we give up on it."""


async def _reap(process: asyncio.subprocess.Process, errors: asyncio.Future[None]) -> None:
    """Wait for a killed script to exit and its stderr to be read.

    The output pipe is :class:`PipeReader`'s, closed by the caller, so asyncio's
    ``wait()`` (which returns only once every pipe it made has closed) waits for
    stdin and stderr alone.
    """
    try:
        async with asyncio.timeout(_REAP_SECONDS):
            with contextlib.suppress(ProcessLookupError):
                await process.wait()
            await errors
    except TimeoutError:
        logger.warning("CGI script (pid %d) not reaped after %g s", process.pid, _REAP_SECONDS)


def _kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the script's process group, whether or not the script itself has exited.

    A child it left behind is still in the group (unless it made a session of its
    own).  The group's id is the script's pid, which the kernel does not hand out
    again while any member of the group lives; once none does, killpg finds nothing
    unless the whole pid space wrapped around since the script exited.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
