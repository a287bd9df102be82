"""SimpleHTTPServer's successor: files and directory listings under one root, safely.

Paths are resolved here, not by aiohttp's static route (which has had traversal
bugs, CVE-2024-23334 / CVE-2024-42367): the raw request path is split into
segments, each percent-decoded on its own, and refused when it decodes to ``..``,
``.``, a slash, a backslash or a control character; dotfiles are hidden unless
``show_hidden=True``; the result must resolve (symlinks followed) to a path inside
the resolved root.  Files are sent by aiohttp's ``FileResponse`` (Range, ETag,
Last-Modified, 304, HEAD), which never follows a symlinked ``.gz`` / ``.br``
sibling.
"""

from __future__ import annotations

import html
import logging
import os
import stat
from pathlib import Path
from urllib.parse import quote, unquote

from aiohttp import web

__all__ = ["StaticFiles", "listing_html", "resolve"]

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
        try:
            segment = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise web.HTTPBadRequest(text="path is not UTF-8") from None
        if any(c in segment for c in "/\\") or any(
            ord(c) < 0x20 or ord(c) == 0x7F for c in segment
        ):
            raise web.HTTPBadRequest(text="bad character in path")
        if segment in (".", ".."):
            raise web.HTTPNotFound()
        segments.append(segment)
    return segments


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
    entries.sort(key=lambda e: (not e[1], e[0].lower()))
    title = html.escape(f"Directory listing for {url_path}")
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
        href = quote(name, safe="") + suffix
        lines.append(f'<li><a href="{html.escape(href)}">{html.escape(name + suffix)}</a></li>')
    lines.append("</ul><hr></body></html>\n")
    return "\n".join(lines)


class StaticFiles:
    """Serves ``root`` (files, ``index.html``, listings); route its :meth:`handle`."""

    def __init__(self, root: str | os.PathLike[str], *, show_hidden: bool = False) -> None:
        self.root = Path(root).resolve(strict=True)
        if not self.root.is_dir():
            raise NotADirectoryError(f"not a directory: {root}")
        self.show_hidden = show_hidden

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve the file or listing the request path names."""
        path = resolve(self.root, request.raw_path, show_hidden=self.show_hidden)
        if path.is_dir():
            segments = [quote(s, safe="") for s in _segments(request.raw_path)]
            canonical = "/" + "".join(s + "/" for s in segments)
            if not request.raw_path.split("?", 1)[0].endswith("/"):
                # One leading slash, always: "//evil.example/" must not become the target.
                raise web.HTTPMovedPermanently(canonical, headers=SECURITY_HEADERS)
            index = (path / "index.html").resolve()
            if index.is_relative_to(self.root) and index.is_file():
                return web.FileResponse(index, headers=SECURITY_HEADERS)
            shown = "/" + "".join(unquote(s) + "/" for s in segments)
            text = listing_html(shown, path, show_hidden=self.show_hidden)
            return web.Response(
                text=text,
                content_type="text/html",
                headers={**SECURITY_HEADERS, "Content-Security-Policy": _LISTING_CSP},
            )
        return web.FileResponse(path, headers=SECURITY_HEADERS)
