"""cgi.FieldStorage's successor for aiohttp handlers: ``getfirst`` / ``getlist``, safe uploads.

::

    async def handle(request):
        form = await read_form(request, upload_dir="uploads")
        return web.Response(text=f"subnum={form.getfirst('subnum')}")

URL-encoded bodies are read by aiohttp's ``request.post()``; multipart bodies are
read part by part, and each file is streamed to ``upload_dir`` under a sanitised,
unique name (never the name the client chose as a path).  Limits: ``max_body`` for
the whole body (413 at once when ``Content-Length`` says more), ``max_fields``,
``max_file_size`` per file, and ``timeout`` for reading it all (400 after).
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDict

__all__ = ["Form", "FormPage", "Upload", "read_form", "sanitise_filename"]

FIELDS = ("subnum", "reviewer", "comments")
"""The tutorial's form fields."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Upload:
    """A file that arrived in a multipart form, already on disk."""

    filename: str
    """The name the client sent (untrusted; for display, escaped)."""
    path: Path
    """Where it was stored: ``upload_dir`` / a sanitised unique name."""
    size: int
    content_type: str


class Form:
    """Form fields by name, with FieldStorage's ``getfirst`` and ``getlist``."""

    def __init__(self, fields: MultiDict[str | Upload]) -> None:
        self.fields = fields

    def getfirst(self, name: str, default: Any = None) -> Any:
        """The first value of ``name``, or ``default`` (FieldStorage.getfirst)."""
        return self.fields.get(name, default)

    def getlist(self, name: str) -> list[str | Upload]:
        """Every value of ``name``, in order; ``[]`` when absent (FieldStorage.getlist)."""
        return self.fields.getall(name, [])

    def __contains__(self, name: object) -> bool:
        return name in self.fields

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(self.fields.keys()))

    def __len__(self) -> int:
        return len(self.fields)


def sanitise_filename(name: str, default: str = "upload") -> str:
    """A safe file name from a client's: no directories, dots first, odd characters or NUL."""
    name = unicodedata.normalize("NFKC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).lstrip("._")[:100]
    return name or default


def _unique(directory: Path, name: str) -> tuple[Path, int]:
    stem, dot, suffix = name.partition(".")
    for n in range(1000):
        candidate = directory / (name if n == 0 else f"{stem}-{n}{dot}{suffix}")
        try:
            return candidate, os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
    raise web.HTTPConflict(text="too many uploads with this name")


class _Budget:
    """What is left of ``max_body`` across every part of a multipart body."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise web.HTTPRequestEntityTooLarge(max_size=self.limit, actual_size=self.used)


async def _store(
    part: BodyPartReader, directory: Path, max_file_size: int, budget: _Budget
) -> Upload:
    filename = part.filename or ""
    path, fd = _unique(directory, sanitise_filename(filename))
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await part.read_chunk():
                size += len(chunk)
                budget.take(len(chunk))
                if size > max_file_size:
                    raise web.HTTPRequestEntityTooLarge(max_size=max_file_size, actual_size=size)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    content_type = part.headers.get("Content-Type", "application/octet-stream")
    return Upload(filename, path, size, content_type)


async def _read_multipart(
    request: web.Request,
    fields: MultiDict[str | Upload],
    *,
    max_fields: int,
    max_field_size: int,
    upload_dir: Path | None,
    max_file_size: int,
    max_body: int,
) -> None:
    # request.multipart() does not apply client_max_size: count every byte here.
    budget = _Budget(max_body)
    reader = await request.multipart()
    stored: list[Upload] = []
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or not part.name:
                raise web.HTTPBadRequest(text="nested or unnamed multipart part")
            if len(fields) >= max_fields:
                raise web.HTTPBadRequest(text=f"more than {max_fields} form fields")
            if part.filename is not None:
                if upload_dir is None:
                    raise web.HTTPBadRequest(text="this form takes no file uploads")
                upload = await _store(part, upload_dir, max_file_size, budget)
                stored.append(upload)
                fields.add(part.name, upload)
                continue
            value = bytearray()
            while chunk := await part.read_chunk():
                value += chunk
                budget.take(len(chunk))
                if len(value) > max_field_size:
                    raise web.HTTPRequestEntityTooLarge(
                        max_size=max_field_size, actual_size=len(value)
                    )
            fields.add(part.name, value.decode(part.get_charset("utf-8"), errors="replace"))
    except BaseException:
        for upload in stored:  # a rejected form leaves nothing behind
            upload.path.unlink(missing_ok=True)
        raise


async def read_form(
    request: web.Request,
    *,
    max_body: int = 1024 * 1024,
    max_fields: int = 1000,
    max_field_size: int = 64 * 1024,
    upload_dir: str | os.PathLike[str] | None = None,
    max_file_size: int = 10 * 1024 * 1024,
    timeout: float = 30.0,
) -> Form:
    """Read the request's form (query string for GET/HEAD), within the limits.

    Raises aiohttp HTTP errors: 413 for a body over ``max_body`` (before reading it
    when ``Content-Length`` says so) or a file over ``max_file_size``; 400 for more
    than ``max_fields`` fields, a malformed body, or one not finished in ``timeout``.
    """
    fields: MultiDict[str | Upload] = MultiDict()
    if request.method in ("GET", "HEAD"):
        fields.extend(request.query)
    else:
        length = request.content_length
        if length is not None and length > max_body:
            raise web.HTTPRequestEntityTooLarge(max_size=max_body, actual_size=length)
        try:
            async with asyncio.timeout(timeout):
                if request.content_type == "multipart/form-data":
                    directory = Path(upload_dir) if upload_dir is not None else None
                    await _read_multipart(
                        request,
                        fields,
                        max_fields=max_fields,
                        max_field_size=max_field_size,
                        upload_dir=directory,
                        max_file_size=min(max_file_size, max_body),
                        max_body=max_body,
                    )
                else:
                    # Count first: aiohttp's own field limit answers 413, which says "too big".
                    if (await request.read()).count(b"&") >= max_fields:
                        raise web.HTTPBadRequest(text=f"more than {max_fields} form fields")
                    posted = await request.post()
                    if len(posted) > max_fields:
                        raise web.HTTPBadRequest(text=f"more than {max_fields} form fields")
                    for name, value in posted.items():
                        if isinstance(value, str):
                            fields.add(name, value)
        except TimeoutError:
            raise web.HTTPBadRequest(text="form not received in time") from None
        except (ValueError, AssertionError, HttpProcessingError) as exc:  # bad multipart
            raise web.HTTPBadRequest(text=f"malformed form: {exc}") from None
    if len(fields) > max_fields:
        raise web.HTTPBadRequest(text=f"more than {max_fields} form fields")
    return Form(fields)


_FORM_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Paper review</title></head>
<body><h1>Paper review</h1>
<form method="post" action="/form" enctype="multipart/form-data">
<p><label>Submission number <input name="subnum" id="subnum"></label></p>
<p><label>Reviewer <input name="reviewer" id="reviewer"></label></p>
<p><label>Comments<br><textarea name="comments" id="comments" rows="5" cols="60"></textarea>
</label></p>
{upload}<p><button type="submit" id="submit">Submit</button></p>
</form></body></html>
"""
_UPLOAD_FIELD = '<p><label>Attachment <input type="file" name="attachment"></label></p>\n'
_PAGE_CSP = "default-src 'none'; form-action 'self'; frame-ancestors 'none'"


class FormPage:
    """The tutorial's form (subnum, reviewer, comments) and the page that echoes it, escaped."""

    def __init__(
        self, *, upload_dir: str | os.PathLike[str] | None = None, max_body: int = 1024 * 1024
    ) -> None:
        self.upload_dir = upload_dir
        self.max_body = max_body

    def _headers(self) -> dict[str, str]:
        return {"Content-Security-Policy": _PAGE_CSP, "X-Content-Type-Options": "nosniff"}

    async def get(self, request: web.Request) -> web.Response:
        """The empty form."""
        upload = _UPLOAD_FIELD if self.upload_dir is not None else ""
        return web.Response(
            text=_FORM_PAGE.format(upload=upload), content_type="text/html", headers=self._headers()
        )

    async def post(self, request: web.Request) -> web.Response:
        """The sample CGI script's answer: ``name=value`` lines, every value escaped."""
        form = await read_form(request, upload_dir=self.upload_dir, max_body=self.max_body)
        lines = [f"{name}={html.escape(str(form.getfirst(name)))}" for name in FIELDS]
        for upload in form.getlist("attachment"):
            if isinstance(upload, Upload):
                lines.append(
                    f"attachment={html.escape(upload.filename)} ({upload.size} bytes, "
                    f"stored as {html.escape(upload.path.name)})"
                )
        body = "<br>\n".join(lines)
        page = (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>Hello!</title></head><body><p id="echo">\n{body}\n</p></body></html>\n'
        )
        return web.Response(text=page, content_type="text/html", headers=self._headers())
