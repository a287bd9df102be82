"""cgitb's successor: error pages that help on your machine and reveal nothing elsewhere.

:func:`error_middleware` turns an unhandled exception into a plain
``500 Internal Server Error (error id 1a2b3c4d)`` page and logs the full traceback
with that id.  With ``debug=True``, and only for a client on loopback, the page
shows the traceback with each frame's local variables, everything HTML-escaped
and values whose names look secret (password, token, key...) redacted.  The
server refuses ``debug=True`` unless it is bound to loopback (see
:class:`~asyncnet.web._server.WebServer`).

Loopback is not enough on its own: a page on any web site can re-point its own
name at 127.0.0.1 (DNS rebinding) and read what the server answers there.  So the
traceback page also needs a ``Host`` header that is a loopback name or address
(``localhost:8000``, ``127.0.0.1:8000``, ``[::1]:8000``) or one of
``debug_hosts``; a rebinding page sends its own name and gets the plain 500
(the rule is the creosote web view's, :class:`asyncnet._httpguard.HostRule`).
Those refusals are logged, one line per 10 seconds at most.
"""

from __future__ import annotations

import html
import logging
import re
import secrets
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType

from aiohttp import web
from aiohttp.typedefs import Middleware

from .._httpguard import HostRule, split_host
from .._loopback import is_loopback_address
from .._ratelimit import RateLimitedLog
from ._errors import WebConfigurationError

__all__ = ["error_middleware", "is_loopback_client", "redact", "traceback_html"]

logger = logging.getLogger("asyncnet.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_SECRET = re.compile(r"pass|secret|token|key|auth|cookie|credential|session", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
MAX_REPR = 300
_PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def redact(name: str, value: object) -> str:
    """``repr(value)``, shortened; ``'***'`` for names (and mapping keys) that look secret."""
    if _SECRET.search(name):
        return "'***'"
    if isinstance(value, Mapping):  # os.environ, headers, settings: hide secret-looking keys
        value = {k: "***" if _SECRET.search(str(k)) else v for k, v in value.items()}
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break the error page
        text = f"<repr failed: {type(exc).__name__}>"
    return text if len(text) <= MAX_REPR else text[:MAX_REPR] + "..."


def escape_log(text: str) -> str:
    """Control characters as escapes, so a request cannot forge log lines."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text).replace("\n", "\\n")


def traceback_html(exc: BaseException, *, path: str, error_id: str) -> str:
    """The debug page: exception, then each frame (innermost last) with its locals."""
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>500: debug traceback</title>',
        "<style>pre{background:#f4f4f4;padding:.5em} td{vertical-align:top;"
        "font-family:monospace} .name{color:#36c}</style></head><body>",
        f"<h1>{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</h1>",
        f"<p>Request path <code>{html.escape(path)}</code>, error id "
        f"<code>{html.escape(error_id)}</code>. Shown because the server runs with "
        "--debug and you are on loopback, asking for a loopback name.</p>",
    ]
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        code = frame.f_code
        parts.append(
            f"<h2>{html.escape(code.co_filename)}, line {tb.tb_lineno}, "
            f"in {html.escape(code.co_name)}</h2>"
        )
        rows = "".join(
            f'<tr><td class="name">{html.escape(name)}</td>'
            f"<td>{html.escape(redact(name, value))}</td></tr>"
            for name, value in sorted(frame.f_locals.items())
        )
        parts.append(f"<table>{rows}</table>")
        tb = tb.tb_next
    formatted = "".join(traceback.format_exception(exc))
    parts.append(f"<h2>Traceback</h2><pre>{html.escape(formatted)}</pre></body></html>\n")
    return "\n".join(parts)


def is_loopback_client(request: web.Request) -> bool:
    """True when the request came from 127.0.0.0/8, ::1 or IPv4-mapped loopback."""
    # An address, never a name (a header rewriting request.remote could say anything).
    return is_loopback_address((request.remote or "").split("%", 1)[0])


def error_middleware(*, debug: bool = False, debug_hosts: Iterable[str] = ()) -> Middleware:
    """An aiohttp middleware: plain 500 with an id, or (debug, loopback) the traceback page.

    The traceback page needs all three: ``debug``, a client on loopback, and a
    ``Host`` header naming loopback or one of ``debug_hosts`` (names such as a
    local reverse proxy's, any port).
    """
    names = [debug_hosts] if isinstance(debug_hosts, str) else list(debug_hosts)
    for name in names:
        parsed = split_host(name)
        if parsed is None or parsed[1] is not None:
            raise WebConfigurationError(
                f"debug hosts are host names such as dev.example or [::1], without a port: "
                f"not {name!r}"
            )
    hosts = HostRule(names)
    withheld = RateLimitedLog()

    def shows_traceback(request: web.Request) -> bool:
        if not (debug and is_loopback_client(request)):
            return False
        host = request.headers.get("Host")
        if hosts.allows(host):
            return True
        since = withheld.hit(time.monotonic())
        if since:
            logger.warning(
                "debug page withheld from a request with Host %s: not a loopback name "
                "(a DNS-rebinding page?); sent the plain 500 (%d such since the last "
                "report; trust a name with debug_hosts / --debug-host)",
                escape_log(repr(host)[:100]),
                since,
            )
        return False

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:
            error_id = secrets.token_hex(4)
            logger.exception(
                "error %s handling %s %s from %s",
                error_id,
                request.method,
                escape_log(request.raw_path),
                request.remote,
            )
            headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
            if shows_traceback(request):
                page = traceback_html(exc, path=request.raw_path, error_id=error_id)
                return web.Response(
                    status=500,
                    text=page,
                    content_type="text/html",
                    headers={**headers, "Content-Security-Policy": _PAGE_CSP},
                )
            return web.Response(
                status=500,
                text=f"500 Internal Server Error (error id {error_id})\n",
                headers=headers,
            )

    return middleware
