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
from ._sendfile import send_file, wait_flushed

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
    return _resolve_stat(root, raw_path, show_hidden=show_hidden)[0]


def _resolve_stat(
    root: Path, raw_path: str, *, show_hidden: bool = False
) -> tuple[Path, os.stat_result]:
    """:func:`resolve`, and the target's ``stat()``."""
    segments = _segments(raw_path)
    if not show_hidden and any(s.startswith(".") for s in segments):
        raise web.HTTPNotFound()
    # The usual case costs one lstat() per segment below the root: segments are
    # already free of "..", "." and separators, so a path with no symlink on it
    # cannot leave the root.  realpath() would lstat() every component from "/",
    # the root's own included, on every request.
    path = root
    info = None
    for segment in segments:
        path = path / segment
        try:
            info = os.lstat(path)
        except (OSError, ValueError):  # missing, a name too long, a NUL
            raise web.HTTPNotFound() from None
        if stat.S_ISLNK(info.st_mode):
            return _resolve_links(root, root.joinpath(*segments), raw_path, show_hidden)
        # (a file used as a directory fails the next lstat() with ENOTDIR: 404)
    if info is None:
        info = os.stat(root)
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise web.HTTPNotFound()
    return path, info


def _resolve_links(
    root: Path, candidate: Path, raw_path: str, show_hidden: bool
) -> tuple[Path, os.stat_result]:
    """Where a path with a symlink on it leads, if that is inside the root."""
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
    try:
        info = resolved.stat()
    except OSError:
        raise web.HTTPNotFound() from None
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise web.HTTPNotFound()
    return resolved, info


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
        path, info = _resolve_stat(self.root, request.raw_path, show_hidden=self.show_hidden)
        if stat.S_ISDIR(info.st_mode):
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
        sender = FileSender(path, headers=SECURITY_HEADERS, max_ranges=self.max_ranges)
        if info.st_size <= SMALL_FILE:
            return sender.respond_now(request) or sender
        return sender


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
SMALL_FILE = 64 * 1024
"""Files up to this size are opened and read whole in the event loop's thread.

That is what nginx does with every file by default: from the page cache, an
``open()`` and a ``pread()`` of 64 KiB cost less than handing the job to a worker
thread and back (the hand-off was the largest cost of a small response), and a
copy this small costs less than ``sendfile()``'s extra steps.  Larger files are
opened in a worker thread (an ``open()`` that waits for a slow disk must not stop
the loop) and go out with ``sendfile()``: the kernel copies, Python never sees them.
"""


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


class _Opened:
    """A file opened for one response, its ``fstat()``, coding and (if small) its bytes."""

    __slots__ = ("coding", "data", "file", "info")

    def __init__(self, file: BinaryIO, info: os.stat_result, coding: str | None) -> None:
        self.file = file
        self.info = info
        self.coding = coding
        self.data: bytes | None = None


def _open(path: Path, codings: set[str]) -> _Opened:
    """The file to send: a pre-compressed sibling the client accepts, else ``path``."""
    opened = None
    for suffix, coding in _SIBLINGS:
        if coding in codings:
            try:
                sibling, info = _open_regular(
                    path.with_name(path.name + suffix), follow_symlinks=False
                )
            except OSError:
                continue
            opened = _Opened(sibling, info, coding)
            break
    if opened is None:
        plain, info = _open_regular(path, follow_symlinks=True)
        opened = _Opened(plain, info, None)
    if opened.info.st_size <= SMALL_FILE:
        try:
            # What fstat() announced, or less if the file shrank since: then the
            # response is cut short and the connection closed, as for a large one.
            opened.data = os.pread(opened.file.fileno(), opened.info.st_size, 0)
        except BaseException:
            opened.file.close()
            raise
    return opened


class _Plan:
    """What a file response sends: a status, then these byte ranges of the file.

    ``heads`` (one per range) and ``tail`` frame the ranges as a
    ``multipart/byteranges`` body; without them the ranges are the body as they are.
    """

    __slots__ = ("heads", "ranges", "status", "tail")

    def __init__(
        self,
        status: int,
        ranges: list[tuple[int, int]] | None = None,
        heads: list[bytes] | None = None,
        tail: bytes = b"",
    ) -> None:
        self.status = status
        self.ranges = ranges or []
        self.heads = heads
        self.tail = tail

    @property
    def length(self) -> int:
        """The body's length in bytes."""
        body = sum(last - first + 1 for first, last in self.ranges)
        if self.heads is not None:
            body += sum(map(len, self.heads)) + len(self.tail)
        return body


class FileSender(web.StreamResponse):
    """One regular file as a response: validators, conditional requests and ranges.

    Answers 304 / 412 to ``If-None-Match`` / ``If-Modified-Since`` / ``If-Match``
    / ``If-Unmodified-Since`` (RFC 9110 13.2.2's order); serves a ``Range`` only
    when ``If-Range`` (if any) names the current file exactly; sends several
    ranges as ``multipart/byteranges``.  What is announced is what the file held
    when it was opened: if it ends early while being sent, the connection is
    aborted (a short body on an open connection would desynchronise it).

    The file is opened in a worker thread and sent with the loop's ``sendfile()``
    where the transport allows it (see :mod:`._sendfile`); :meth:`respond_now`
    answers a small file at once from memory instead.
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

    def respond_now(self, request: web.BaseRequest) -> web.Response | None:
        """The whole response in memory if the file is at most :data:`SMALL_FILE` bytes.

        Opens and reads in the loop's thread (see :data:`SMALL_FILE`); the headers
        and body then leave in one write.  None: the file is larger (or changed
        while being read), so send this object itself instead.
        """
        codings = _codings(request.headers.get(hdrs.ACCEPT_ENCODING, ""))
        try:
            opened = _open(self.path, codings)
        except PermissionError:
            return web.Response(status=403, headers=self.headers)
        except OSError:  # gone, or no longer a regular file, since resolve()
            return web.Response(status=404, headers=self.headers)
        try:
            data = opened.data
            if data is None or len(data) != opened.info.st_size:
                return None
            plan = self._decide(request, opened)
        finally:
            opened.file.close()
        if plan.status == 304:
            return web.Response(status=304, headers=self.headers)
        pieces = []
        for index, (first, last) in enumerate(plan.ranges):
            if plan.heads is not None:
                pieces.append(plan.heads[index])
            pieces.append(data[first : last + 1])
        if plan.heads is not None:
            pieces.append(plan.tail)
        return web.Response(status=plan.status, body=b"".join(pieces), headers=self.headers)

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        """Open the file, decide the status, send headers and body."""
        if self.prepared:
            return await super().prepare(request)
        codings = _codings(request.headers.get(hdrs.ACCEPT_ENCODING, ""))
        loop = asyncio.get_running_loop()
        try:
            opened = await loop.run_in_executor(None, _open, self.path, codings)
        except PermissionError:
            return await self._send(request, opened=None, plan=_Plan(403))
        except OSError:  # gone, or no longer a regular file, since resolve()
            return await self._send(request, opened=None, plan=_Plan(404))
        try:
            return await self._send(request, opened, self._decide(request, opened))
        finally:
            opened.file.close()

    def _decide(self, request: web.BaseRequest, opened: _Opened) -> _Plan:
        """Set the headers for ``opened`` and say what to send."""
        info, coding = opened.info, opened.coding
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
            return _Plan(status)

        ranges = None
        spec = request.headers.get(hdrs.RANGE)
        if_range = request.headers.get(hdrs.IF_RANGE)
        if spec is not None and (
            if_range is None or if_range_holds(if_range, etag=f'"{tag}"', last_modified=modified)
        ):
            ranges = select_ranges(spec, size, max_ranges=self.max_ranges)
        if ranges == []:
            self.headers[hdrs.CONTENT_RANGE] = f"bytes */{size}"
            return _Plan(416)
        if ranges is None:
            return _Plan(200, [(0, size - 1)] if size else [])
        if len(ranges) == 1:
            first, last = ranges[0]
            self.headers[hdrs.CONTENT_RANGE] = f"bytes {first}-{last}/{size}"
            return _Plan(206, ranges)
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
        return _Plan(206, ranges, heads, tail)

    async def _send(
        self, request: web.BaseRequest, opened: _Opened | None, plan: _Plan
    ) -> AbstractStreamWriter | None:
        self.set_status(plan.status)
        if plan.status != 304:
            self.content_length = plan.length
        writer = await super().prepare(request)
        if request.method == "HEAD" or writer is None or opened is None:
            return writer
        for index, (first, last) in enumerate(plan.ranges):
            if plan.heads is not None:
                await self.write(plan.heads[index])
            await self._send_slice(request, writer, opened, first, last - first + 1)
        if plan.heads is not None:
            await self.write(plan.tail)
        return writer

    async def _send_slice(
        self,
        request: web.BaseRequest,
        writer: AbstractStreamWriter,
        opened: _Opened,
        offset: int,
        count: int,
    ) -> None:
        """``count`` bytes from ``offset``, or abort the connection if the file ends first."""
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("connection lost")
        if opened.data is not None:
            chunk = opened.data[offset : offset + count]
            if chunk:
                await self.write(chunk)
            sent = len(chunk)
        else:

            async def drained() -> None:
                await wait_flushed(transport, writer.drain)

            sent = await send_file(
                transport, opened.file, offset, count, drained=drained, write=self.write
            )
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
