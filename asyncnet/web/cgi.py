"""CGIHTTPServer's successor: run CGI scripts (RFC 3875) from one directory, with limits.

``/cgi-bin/NAME/extra/path?query`` runs the executable ``cgi_dir/NAME`` directly
(no shell) with the RFC 3875 environment, the request body on its stdin, and the
server's own environment *not* inherited (only ``PATH`` and the locale), so no
secret leaks into a script and no ``Proxy:`` request header becomes ``HTTP_PROXY``
(httpoxy).  The script's output starts with CGI headers (``Content-Type``,
``Status``, ``Location``), then a blank line, then the body, which is streamed to
the client up to ``max_output`` bytes.  A script that runs longer than
``time_limit`` seconds, writes too much, or whose client goes away is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import stat
from pathlib import Path
from typing import Any

from aiohttp import web

from .debug import escape_log

__all__ = ["CGIRunner", "parse_cgi_headers"]

logger = logging.getLogger("asyncnet.web")

MAX_HEADER_BLOCK = 64 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SKIPPED_HEADERS = {"PROXY", "CONTENT_TYPE", "CONTENT_LENGTH", "AUTHORIZATION"}


class CGIError(Exception):
    """The script's output broke the CGI rules (reported to the client as 502)."""


def parse_cgi_headers(block: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    """Status, reason and headers from a script's header block (LF or CRLF lines).

    Raises :class:`CGIError` for a line without a colon, a bad ``Status`` or a
    response with neither ``Content-Type`` nor ``Location``.
    """
    status, reason = 200, "OK"
    headers: list[tuple[str, str]] = []
    for raw in block.split(b"\n"):
        line = raw.rstrip(b"\r").decode("latin-1")
        if not line:
            continue
        name, colon, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name or any(c.isspace() for c in name):
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
    """Runs scripts from ``cgi_dir``; route ``/cgi-bin/{tail:.*}`` to its :meth:`handle`."""

    def __init__(
        self,
        cgi_dir: str | os.PathLike[str],
        *,
        time_limit: float = 30.0,
        max_output: int = 10 * 1024 * 1024,
        max_body: int = 1024 * 1024,
        url_prefix: str = "/cgi-bin",
        server_software: str = "asyncnet",
    ) -> None:
        self.cgi_dir = Path(cgi_dir).resolve()
        self.time_limit = time_limit
        self.max_output = max_output
        self.max_body = max_body
        self.url_prefix = url_prefix.rstrip("/")
        self.server_software = server_software
        self._reaping: set[asyncio.Future[None]] = set()

    def script_for(self, tail: str) -> tuple[Path, str, str]:
        """(script path, script name, PATH_INFO) for the part of the path after the prefix."""
        name, slash, rest = tail.partition("/")
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
        return resolved, f"{self.url_prefix}/{name}", slash + rest

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
            env["PATH_TRANSLATED"] = str(self.cgi_dir.parent) + path_info
        if body or request.method in ("POST", "PUT"):
            env["CONTENT_LENGTH"] = str(len(body))
        if request.content_type and "Content-Type" in request.headers:
            env["CONTENT_TYPE"] = request.headers["Content-Type"]
        for name, value in request.headers.items():
            key = name.upper().replace("-", "_")
            if key in _SKIPPED_HEADERS:
                continue
            meta = f"HTTP_{key}"
            env[meta] = f"{env[meta]}, {value}" if meta in env else value
        return env

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Run the script the request names and relay its response."""
        tail = request.match_info.get("tail", "")
        script, script_name, path_info = self.script_for(tail)
        length = request.content_length
        if length is not None and length > self.max_body:
            raise web.HTTPRequestEntityTooLarge(max_size=self.max_body, actual_size=length)
        body = await request.read()
        env = self.environment(request, script_name, path_info, body)
        process = await asyncio.create_subprocess_exec(
            str(script),
            cwd=self.cgi_dir,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # so the kill reaches the script's children too
        )
        errors = asyncio.ensure_future(_log_stderr(process, script_name))
        try:
            async with asyncio.timeout(self.time_limit):
                return await self._relay(request, process, body, script_name)
        except TimeoutError:
            logger.warning("CGI %s killed after %g s", script_name, self.time_limit)
            raise web.HTTPGatewayTimeout(text="the script took too long") from None
        finally:
            # Reached on success, on errors, and when aiohttp cancels the handler
            # because the client went away: never leave a script running.  Reaping
            # runs in a task of its own, which a second cancellation (the client's
            # connection dropping while we wait) cannot cut short; aclose() waits
            # for what is left, so no pipe or task outlives the server.
            _kill(process)
            reaping = asyncio.ensure_future(_reap(process, errors))
            self._reaping.add(reaping)
            reaping.add_done_callback(self._reaped)
            await asyncio.shield(reaping)

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
        body: bytes,
        script_name: str,
    ) -> web.StreamResponse:
        assert process.stdin is not None
        assert process.stdout is not None
        with contextlib.suppress(ConnectionError):  # a script need not read its input
            process.stdin.write(body)
            await process.stdin.drain()
        process.stdin.close()
        head = await _read_head(process.stdout)
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
        sent = 0
        chunk = rest
        while True:
            if not chunk:  # the header block may end exactly where a read did
                chunk = await process.stdout.read(64 * 1024)
                if not chunk:
                    break
            sent += len(chunk)
            if sent > self.max_output:
                logger.warning("CGI %s killed: more than %d bytes", script_name, self.max_output)
                _kill(process)
                if request.transport is not None:
                    request.transport.abort()  # the client must see a truncated response
                return response
            await response.write(chunk)
            chunk = b""
        await response.write_eof()
        return response


def _server_address(request: web.Request) -> tuple[str, int]:
    transport = request.transport
    sockname: Any = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple):
        return str(sockname[0]), int(sockname[1])
    return "127.0.0.1", 0


async def _read_head(stdout: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """(header block, start of body) from the script's output, bounded."""
    buffer = b""
    while True:
        found = [(i, sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := buffer.find(sep)) >= 0]
        if found:
            index, separator = min(found)
            return buffer[:index], buffer[index + len(separator) :]
        if len(buffer) > MAX_HEADER_BLOCK:
            return None
        data = await stdout.read(64 * 1024)
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
    """Wait for a killed script to exit, its output pipe to end and its stderr to be read.

    asyncio's ``wait()`` returns only once every pipe has closed, and a script killed
    mid-flood leaves output in its stdout pipe that nobody reads any more (reading
    was paused when our buffer filled): drain it, discarding.
    """
    try:
        async with asyncio.timeout(_REAP_SECONDS):
            if process.stdout is not None:
                while await process.stdout.read(64 * 1024):
                    pass
            with contextlib.suppress(ProcessLookupError):
                await process.wait()
            await errors
    except TimeoutError:
        logger.warning("CGI script (pid %d) not reaped after %g s", process.pid, _REAP_SECONDS)


def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, 9)
