"""Web errors: one root, :class:`WebError`; each class also derives from its kind.

A refused option is also a :class:`~asyncnet.errors.ConfigurationError`, a request
that cannot be sent safely a :class:`~asyncnet.errors.LocalProtocolError`, a server
that breaks HTTP or a limit a :class:`~asyncnet.errors.PeerProtocolError`, an
unreachable proxy a :class:`~asyncnet.errors.NetworkError`.  A 4xx or 5xx status is
none of those: the server answered, correctly, that it will not serve the request,
so :class:`HTTPStatusError` is only a :class:`WebError`.
"""

from __future__ import annotations

from typing import Any

from ..errors import (
    AsyncNetError,
    ConfigurationError,
    LocalProtocolError,
    NetworkError,
    PeerProtocolError,
    format_peer,
)

__all__ = [
    "BodyTooLarge",
    "CompressionBomb",
    "HTTPStatusError",
    "IncompleteBody",
    "ProxyError",
    "TooManyRedirects",
    "UnsafeRequest",
    "WebConfigurationError",
    "WebError",
]


class WebError(AsyncNetError):
    """Root of the web package's errors: ``except WebError`` catches every class here."""


class WebConfigurationError(WebError, ConfigurationError):
    """A web server or client option asyncnet refuses (for example debug pages on 0.0.0.0)."""


class UnsafeRequest(WebError, LocalProtocolError):
    """The caller asked for a request that cannot be sent safely (CR/LF in a header...)."""


class IncompleteBody(WebError, PeerProtocolError):
    """The server ended the response before the body it announced (never short data)."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        super().__init__(f"incomplete response body from {url}: {detail}")


class BodyTooLarge(WebError, PeerProtocolError):
    """A response body (after decompression) grew past the caller's limit."""

    def __init__(self, url: str, limit: int) -> None:
        self.url = url
        self.limit = limit
        super().__init__(f"response body from {url} exceeds {limit} bytes")


class CompressionBomb(WebError, PeerProtocolError):
    """A compressed body expanded more than ``max_ratio`` times its size on the wire."""

    def __init__(self, url: str, max_ratio: float, size: int, wire: int) -> None:
        self.url = url
        self.max_ratio = max_ratio
        self.size = size
        self.wire = wire
        super().__init__(
            f"response body from {url} expands more than {max_ratio:g} times "
            f"({size} bytes from {wire} bytes as sent)"
        )


class ProxyError(WebError, NetworkError):
    """The forward proxy could not be reached (refused, unknown host...): check the proxy,
    not the target.

    ``source`` names the environment variable the proxy came from (``HTTPS_PROXY``...),
    or is ``None`` when the program chose the proxy.
    """

    def __init__(
        self,
        message: str,
        peer: Any = None,
        phase: str | None = None,
        *,
        errno: int | None = None,
        reason: str | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(message, peer, phase, errno=errno, reason=reason)
        self.source = source


class TooManyRedirects(WebError, PeerProtocolError):
    """More redirects than allowed (a loop, most likely)."""

    def __init__(self, url: str, limit: int) -> None:
        self.url = url
        self.limit = limit
        super().__init__(f"more than {limit} redirects starting at {url}")


class HTTPStatusError(WebError):
    """``raise_for_status()`` on a 4xx/5xx response.

    Not a :class:`~asyncnet.errors.PeerProtocolError`: a 404 is a valid answer, and
    an ``except PeerProtocolError`` written for broken servers must not catch it.
    """

    def __init__(self, status: int, reason: str, url: str, peer: Any = None) -> None:
        self.status = status
        self.reason = reason
        self.url = url
        where = f" ({format_peer(peer)})" if peer is not None else ""
        super().__init__(f"{status} {reason} from {url}{where}")
