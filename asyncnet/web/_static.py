"""SimpleHTTPServer's successor: files and directory listings under one root, safely.

Paths are resolved here, not by aiohttp's static route (which has had traversal
bugs, CVE-2024-23334 / CVE-2024-42367): the raw request path is split into
segments, each percent-decoded to bytes and then to a file name the way the
operating system does (``os.fsdecode``, so a name that is not UTF-8 can be asked
for), and refused when it decodes to ``..``, ``.``, a slash, a backslash or a
control character; dotfiles are hidden unless ``show_hidden=True``; the result
must resolve (symlinks followed) to a path inside the resolved root.  Listings
show every name (undecodable bytes as U+FFFD), HTML-escaped, linked by its
percent-encoded bytes.

Files are sent by :class:`FileSender`, not aiohttp's ``FileResponse``, which
ignores an ETag in ``If-Range`` (a resumed download of a changed file came back
spliced), refuses several ranges with 416, and ends a file that shrinks while it
is sent short on a connection that stays open (the next pipelined response then
reads as the rest of the body).  ``FileSender`` keeps what ``FileResponse`` did
(ETag, Last-Modified, 304 and 412, HEAD, a ``.br`` / ``.gz`` sibling that is a
regular file and never a symlink) and adds: ``If-Range`` with strong comparison;
several ranges as one ``206 multipart/byteranges``, merged, at most
``max_ranges`` (16) of them, else the whole file; and a file that ends early
closes the connection, so the client sees an error rather than a desync.
"""

from __future__ import annotations

import asyncio
import html
import logging
import math
import mimetypes
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, unquote_to_bytes

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter

from ._errors import WebConfigurationError
from ._ranges import MAX_RANGES, if_range_holds, select_ranges

__all__ = ["FileSender", "StaticFiles", "listing_html", "resolve"]

logger = logging.getLogger("asyncnet.web")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_LISTING_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


def _segments(raw_path: str) -> list[str]:
    """Decoded path segments of a raw request path; raises HTTP errors for unsafe ones."""
    path = raw_path.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        raise web.HTTPBadRequest(text="request path must start with /")
    segments = []
    for raw in path.split("/"):
        if not raw:
            continue  # "//" and the leading slash
        # Bytes first, then the OS's own decoding: a file whose name is not UTF-8
        # is asked for by its bytes (%E9), as the listing links it.
        data = unquote_to_bytes(raw)
        if any(b in b"/\\" or b < 0x20 or b == 0x7F for b in data):
            raise web.HTTPBadRequest(text="bad character in path")
        if data in (b".", b".."):
            raise web.HTTPNotFound()
        try:
            segments.append(os.fsdecode(data))
        except UnicodeError:  # only where file names must be Unicode (Windows)
            raise web.HTTPNotFound() from None
    return segments


def _href(name: str) -> str:
    """A file name as a URL path segment: its bytes, percent-encoded."""
    return quote(os.fsencode(name), safe="")


def _shown(name: str) -> str:
    """A file name for people: undecodable bytes as U+FFFD (escape it for HTML)."""
    try:
        data = os.fsencode(name)
    except UnicodeError:  # not a name os.fsdecode() could have made
        data = name.encode("utf-8", errors="replace")
    return data.decode("utf-8", errors="replace")


def resolve(root: Path, raw_path: str, *, show_hidden: bool = False) -> Path:
    """The file or directory under ``root`` that ``raw_path`` names, or an HTTP error.

    ``root`` must already be resolved.  Raises ``HTTPBadRequest`` for malformed
    paths and ``HTTPNotFound`` for anything missing, hidden or outside the root
    (the same answer, so a probe learns nothing).
    """
    segments = _segments(raw_path)
    if not show_hidden and any(s.startswith(".") for s in segments):
        raise web.HTTPNotFound()
    candidate = root.joinpath(*segments)
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a symlink loop, a name too long
        raise web.HTTPNotFound() from None
    if not resolved.is_relative_to(root):
        logger.info("refused %r: resolves outside the root", raw_path)
        raise web.HTTPNotFound()
    relative = resolved.relative_to(root).parts
    if not show_hidden and any(part.startswith(".") for part in relative):
        raise web.HTTPNotFound()  # a symlink inside the root pointing at a dotfile
    mode = resolved.stat().st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise web.HTTPNotFound()
    return resolved


def listing_html(url_path: str, directory: Path, *, show_hidden: bool = False) -> str:
    """An HTML listing of ``directory``: names escaped, links percent-encoded, no fs paths."""
    entries = []
    with os.scandir(directory) as it:
        for entry in it:
            if not show_hidden and entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                continue
            entries.append((entry.name, is_dir))
    entries.sort(key=lambda e: (not e[1], _shown(e[0]).lower()))
    title = html.escape(f"Directory listing for {_shown(url_path)}")
    lines = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title></head>",
        f"<body><h1>{title}</h1><hr><ul>",
    ]
    if url_path != "/":
        lines.append('<li><a href="../">../</a></li>')
    for name, is_dir in entries:
        suffix = "/" if is_dir else ""
        href = _href(name) + suffix
        shown = _shown(name) + suffix
        lines.append(f'<li><a href="{html.escape(href)}">{html.escape(shown)}</a></li>')
    lines.append("</ul><hr></body></html>\n")
    return "\n".join(lines)


class StaticFiles:
    """Serves ``root`` (files, ``index.html``, listings); route its :meth:`handle`.

    ``max_ranges`` bounds the ranges one request may ask for (more: the whole
    file, 200).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        show_hidden: bool = False,
        max_ranges: int = MAX_RANGES,
    ) -> None:
        self.root = Path(root).resolve(strict=True)
        if not self.root.is_dir():
            raise NotADirectoryError(f"not a directory: {root}")
        if max_ranges < 1:
            raise WebConfigurationError(f"max_ranges must be >= 1, not {max_ranges!r}")
        self.show_hidden = show_hidden
        self.max_ranges = max_ranges

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve the file or listing the request path names."""
        path = resolve(self.root, request.raw_path, show_hidden=self.show_hidden)
        if path.is_dir():
            segments = _segments(request.raw_path)
            canonical = "/" + "".join(_href(s) + "/" for s in segments)
            if not request.raw_path.split("?", 1)[0].endswith("/"):
                # One leading slash, always: "//evil.example/" must not become the target.
                raise web.HTTPMovedPermanently(canonical, headers=SECURITY_HEADERS)
            index = (path / "index.html").resolve()
            if index.is_relative_to(self.root) and index.is_file():
                return FileSender(index, headers=SECURITY_HEADERS, max_ranges=self.max_ranges)
            shown = "/" + "".join(s + "/" for s in segments)
            text = listing_html(shown, path, show_hidden=self.show_hidden)
            return web.Response(
                text=text,
                content_type="text/html",
                headers={**SECURITY_HEADERS, "Content-Security-Policy": _LISTING_CSP},
            )
        return FileSender(path, headers=SECURITY_HEADERS, max_ranges=self.max_ranges)


# Content types by extension, with the encodings map cleared: "a.tar.gz" is sent
# as what it is on disk (gzip), never as a tar file with a Content-Encoding.
_TYPES = mimetypes.MimeTypes()
_TYPES.encodings_map.clear()
for _type, _extension in (
    ("application/gzip", ".gz"),
    ("application/x-brotli", ".br"),
    ("application/x-bzip2", ".bz2"),
    ("application/x-compress", ".Z"),
    ("application/x-xz", ".xz"),
):
    _TYPES.add_type(_type, _extension)
_SIBLINGS = ((".br", "br"), (".gz", "gzip"))
"""Pre-compressed siblings a client may get instead, in order of preference."""
CHUNK = 256 * 1024


def _codings(accept_encoding: str) -> set[str]:
    """The content codings an Accept-Encoding value accepts (q=0 means refused)."""
    accepted = set()
    for item in accept_encoding.lower().split(","):
        name, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0  # unreadable: as good as refused
        if name and quality > 0:
            accepted.add(name)
    return accepted


def _open_regular(path: Path, *, follow_symlinks: bool) -> tuple[BinaryIO, os.stat_result]:
    """Open a regular file; refuse anything else before it can block (a FIFO)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    if not follow_symlinks:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise FileNotFoundError(path)
        flags |= getattr(os, "O_NOFOLLOW", 0)  # and no symlink swapped in since
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileNotFoundError(path)
        os.set_blocking(fd, True)
        return open(fd, "rb"), info  # closed by the caller
    except BaseException:
        os.close(fd)
        raise


def _open(path: Path, codings: set[str]) -> tuple[BinaryIO, os.stat_result, str | None]:
    """The file to send: a pre-compressed sibling the client accepts, else ``path``."""
    for suffix, coding in _SIBLINGS:
        if coding in codings:
            try:
                sibling, info = _open_regular(
                    path.with_name(path.name + suffix), follow_symlinks=False
                )
            except OSError:
                continue
            return sibling, info, coding
    plain, info = _open_regular(path, follow_symlinks=True)
    return plain, info, None


class FileSender(web.StreamResponse):
    """One regular file as a response: validators, conditional requests and ranges.

    Answers 304 / 412 to ``If-None-Match`` / ``If-Modified-Since`` / ``If-Match``
    / ``If-Unmodified-Since`` (RFC 9110 13.2.2's order); serves a ``Range`` only
    when ``If-Range`` (if any) names the current file exactly; sends several
    ranges as ``multipart/byteranges``.  What is announced is what the file held
    when it was opened: if it ends early while being sent, the connection is
    aborted (a short body on an open connection would desynchronise it).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        headers: Mapping[str, str] | None = None,
        max_ranges: int = MAX_RANGES,
    ) -> None:
        super().__init__(headers=headers)
        self.path = Path(path)
        self.max_ranges = max_ranges

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        """Open the file, decide the status, send headers and body."""
        if self.prepared:
            return await super().prepare(request)
        codings = _codings(request.headers.get(hdrs.ACCEPT_ENCODING, ""))
        loop = asyncio.get_running_loop()
        try:
            file, info, coding = await loop.run_in_executor(None, _open, self.path, codings)
        except PermissionError:
            return await self._empty(request, 403)
        except OSError:  # gone, or no longer a regular file, since resolve()
            return await self._empty(request, 404)
        try:
            return await self._respond(request, file, info, coding)
        finally:
            file.close()

    async def _empty(self, request: web.BaseRequest, status: int) -> AbstractStreamWriter | None:
        self.set_status(status)
        self.content_length = 0
        return await super().prepare(request)

    async def _respond(
        self,
        request: web.BaseRequest,
        file: BinaryIO,
        info: os.stat_result,
        coding: str | None,
    ) -> AbstractStreamWriter | None:
        size = info.st_size
        tag = f"{info.st_mtime_ns:x}-{size:x}"
        modified = math.ceil(info.st_mtime)  # Last-Modified as sent, whole seconds
        self.etag = tag
        self.last_modified = modified
        if hdrs.CONTENT_TYPE not in self.headers:
            self.content_type = _TYPES.guess_type(self.path.name)[0] or "application/octet-stream"
        if coding is not None:
            self.headers[hdrs.CONTENT_ENCODING] = coding
            self.headers[hdrs.VARY] = hdrs.ACCEPT_ENCODING
        self.headers[hdrs.ACCEPT_RANGES] = "bytes"

        status = _precondition(request, tag, modified)
        if status is not None:
            if status == 304:
                self.set_status(304)
                return await super().prepare(request)
            return await self._empty(request, status)

        ranges = None
        spec = request.headers.get(hdrs.RANGE)
        if_range = request.headers.get(hdrs.IF_RANGE)
        if spec is not None and (
            if_range is None or if_range_holds(if_range, etag=f'"{tag}"', last_modified=modified)
        ):
            ranges = select_ranges(spec, size, max_ranges=self.max_ranges)
        if ranges == []:
            self.headers[hdrs.CONTENT_RANGE] = f"bytes */{size}"
            return await self._empty(request, 416)
        if ranges is None:
            return await self._send(request, file, [(0, size - 1)] if size else [])
        self.set_status(206)
        if len(ranges) == 1:
            first, last = ranges[0]
            self.headers[hdrs.CONTENT_RANGE] = f"bytes {first}-{last}/{size}"
            return await self._send(request, file, ranges)
        return await self._send_parts(request, file, ranges, size)

    async def _send(
        self, request: web.BaseRequest, file: BinaryIO, ranges: list[tuple[int, int]]
    ) -> AbstractStreamWriter | None:
        self.content_length = sum(last - first + 1 for first, last in ranges)
        writer = await super().prepare(request)
        if request.method != "HEAD":
            for first, last in ranges:
                await self._send_slice(request, file, first, last - first + 1)
        return writer

    async def _send_parts(
        self,
        request: web.BaseRequest,
        file: BinaryIO,
        ranges: list[tuple[int, int]],
        size: int,
    ) -> AbstractStreamWriter | None:
        # RFC 9110 14.6; the boundary is random, so no file can contain it by design.
        boundary = secrets.token_hex(16)
        part_type = self.headers[hdrs.CONTENT_TYPE]
        heads = [
            (
                f"--{boundary}\r\nContent-Type: {part_type}\r\n"
                f"Content-Range: bytes {first}-{last}/{size}\r\n\r\n"
            ).encode("latin-1")
            for first, last in ranges
        ]
        heads[1:] = [b"\r\n" + head for head in heads[1:]]  # CRLF ends the previous part
        tail = f"\r\n--{boundary}--\r\n".encode("latin-1")
        self.headers[hdrs.CONTENT_TYPE] = f"multipart/byteranges; boundary={boundary}"
        self.content_length = (
            sum(map(len, heads)) + len(tail) + sum(last - first + 1 for first, last in ranges)
        )
        writer = await super().prepare(request)
        if request.method != "HEAD":
            for head, (first, last) in zip(heads, ranges, strict=True):
                await self.write(head)
                await self._send_slice(request, file, first, last - first + 1)
            await self.write(tail)
        return writer

    async def _send_slice(
        self, request: web.BaseRequest, file: BinaryIO, offset: int, count: int
    ) -> None:
        """``count`` bytes from ``offset``, or abort the connection if the file ends first."""
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("connection lost")
        loop = asyncio.get_running_loop()
        try:
            sent = await loop.sendfile(transport, file, offset, count)
        except NotImplementedError:  # uvloop: no sendfile, so through the writer
            sent = 0
            while sent < count:
                chunk = await loop.run_in_executor(
                    None, os.pread, file.fileno(), min(CHUNK, count - sent), offset + sent
                )
                if not chunk:
                    break
                await self.write(chunk)
                sent += len(chunk)
        if sent < count:
            logger.warning(
                "%r ended %d bytes early while being sent (changed on disk?): "
                "closed the connection",
                self.path.name,
                count - sent,
            )
            # The client must see a short body and a closed connection, never a
            # next response where it expects the rest of this one.
            transport.abort()
            raise ConnectionResetError(f"{self.path.name} ended early")


def _precondition(request: web.BaseRequest, tag: str, modified: int) -> int | None:
    """304 or 412 when a conditional header says so (RFC 9110 13.2.2), else None."""
    if (if_match := request.if_match) is not None:
        if not any(e.value == "*" or (e.value == tag and not e.is_weak) for e in if_match):
            return 412
    elif (since := request.if_unmodified_since) is not None and modified > since.timestamp():
        return 412
    if (if_none_match := request.if_none_match) is not None:
        if any(e.value in ("*", tag) for e in if_none_match):  # weak comparison
            return 304 if request.method in ("GET", "HEAD") else 412
    elif (
        request.method in ("GET", "HEAD")
        and (since := request.if_modified_since) is not None
        and modified <= since.timestamp()
    ):
        return 304
    return None
