"""urllib2's ``Request`` and the ``Response`` that :mod:`asyncnet.web._client` returns.

Everything a caller puts into a request is checked here, before any connection:
a method that is not an HTTP token, a header name that is not one, CR/LF/NUL in a
header value, control characters or spaces in the URL (CVE-2023-49082's shape):
each is :class:`~asyncnet.web._errors.UnsafeRequest`.
"""

from __future__ import annotations

import json as jsonlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from multidict import CIMultiDictProxy
from yarl import URL

from ._errors import HTTPStatusError, UnsafeRequest, WebConfigurationError

__all__ = ["Request", "Response", "check_header", "check_url"]

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_URL = re.compile(r"[\x00-\x20\x7f]")


def check_url(url: str | URL) -> URL:
    """Parse ``url``; refuse control characters or spaces and schemes other than http(s)."""
    text = str(url)
    if _BAD_URL.search(text):
        raise UnsafeRequest(f"control character or space in URL {text!r}")
    try:
        parsed = URL(text)
    except ValueError as exc:
        raise WebConfigurationError(f"not a URL: {text!r} ({exc})") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise WebConfigurationError(f"need an http:// or https:// URL with a host, not {text!r}")
    return parsed


def check_header(name: str, value: str) -> None:
    """Refuse header names that are not tokens and values carrying CR, LF or NUL."""
    if not _TOKEN.match(name):
        raise UnsafeRequest(f"bad header name {name!r}")
    if _BAD_VALUE.search(value):
        raise UnsafeRequest(f"control character in the value of header {name!r}")


class Request:
    """urllib2's ``Request(url, data=None, headers={})``: data makes it a POST.

    ``data`` may be bytes, a str, or a mapping (sent form-encoded).  Header names
    are kept capitalised the way urllib2 did, one value per name.
    """

    def __init__(
        self,
        url: str | URL,
        data: bytes | str | Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        method: str | None = None,
    ) -> None:
        self.url = check_url(url)
        self.data = data
        self.headers: dict[str, str] = {}
        self.proxy: str | None = None
        if method is not None and not _TOKEN.match(method):
            raise UnsafeRequest(f"bad HTTP method {method!r}")
        self._method = method
        for name, value in (headers or {}).items():
            self.add_header(name, value)

    @property
    def full_url(self) -> str:
        """The URL as text."""
        return str(self.url)

    @property
    def method(self) -> str:
        """The explicit method, else POST when there is data, else GET (urllib2's rule)."""
        return self._method or ("POST" if self.data is not None else "GET")

    def get_method(self) -> str:
        """urllib2 spelling of :attr:`method`."""
        return self.method

    def add_header(self, key: str, value: str) -> None:
        """Set a header (replacing an earlier one of the same name)."""
        check_header(key, value)
        self.headers[key.capitalize()] = value

    def has_header(self, key: str) -> bool:
        """True when the header is set."""
        return key.capitalize() in self.headers

    def get_header(self, key: str, default: str | None = None) -> str | None:
        """The header's value, or ``default``."""
        return self.headers.get(key.capitalize(), default)

    def add_data(self, data: bytes | str | Mapping[str, str]) -> None:
        """urllib2's add_data: attach a body, which turns the request into a POST."""
        self.data = data

    def set_proxy(self, host: str, scheme: str = "http") -> None:
        """Send this request through the proxy at ``host`` (``"127.0.0.1:8899"``)."""
        if scheme not in ("http", "https"):
            raise WebConfigurationError(f"proxy scheme must be http or https, not {scheme!r}")
        self.proxy = str(check_url(f"{scheme}://{host}"))

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.full_url}>"


@dataclass(frozen=True)
class Response:
    """A complete response: status, headers and the whole (bounded) body."""

    url: str
    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    body: bytes
    history: tuple[str, ...] = field(default=())
    charset: str | None = None

    @property
    def ok(self) -> bool:
        """True for 1xx-3xx."""
        return self.status < 400

    def text(self, encoding: str | None = None) -> str:
        """The body decoded with ``encoding``, the response's charset, or UTF-8 (also when
        the server names a charset Python does not know)."""
        if encoding is None and self.charset:
            try:
                return self.body.decode(self.charset, errors="replace")
            except LookupError:  # the peer can name any charset: not a reason to fail
                pass
        return self.body.decode(encoding or "utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return jsonlib.loads(self.body)

    def raise_for_status(self) -> Self:
        """Raise :class:`HTTPStatusError` for a 4xx or 5xx status; return self otherwise."""
        if self.status >= 400:
            raise HTTPStatusError(self.status, self.reason, self.url)
        return self
