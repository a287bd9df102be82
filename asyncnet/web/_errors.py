"""Errors of the web package, derived from the asyncnet tree (the lead may move them)."""

from __future__ import annotations

from typing import Any

from ..errors import (
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
]


class WebConfigurationError(ConfigurationError):
    """A web server or client option asyncnet refuses (for example debug pages on 0.0.0.0)."""


class UnsafeRequest(LocalProtocolError):
    """The caller asked for a request that cannot be sent safely (CR/LF in a header...)."""


class IncompleteBody(PeerProtocolError):
    """The server ended the response before the body it announced (never short data)."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        super().__init__(f"incomplete response body from {url}: {detail}")


class BodyTooLarge(PeerProtocolError):
    """A response body (after decompression) grew past the caller's limit."""

    def __init__(self, url: str, limit: int) -> None:
        self.url = url
        self.limit = limit
        super().__init__(f"response body from {url} exceeds {limit} bytes")


class CompressionBomb(PeerProtocolError):
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


class ProxyError(NetworkError):
    """The forward proxy could not be reached (refused, unknown host...): check the proxy,
    not the target."""


class TooManyRedirects(PeerProtocolError):
    """More redirects than allowed (a loop, most likely)."""

    def __init__(self, url: str, limit: int) -> None:
        self.url = url
        self.limit = limit
        super().__init__(f"more than {limit} redirects starting at {url}")


class HTTPStatusError(PeerProtocolError):
    """``raise_for_status()`` on a 4xx/5xx response."""

    def __init__(self, status: int, reason: str, url: str, peer: Any = None) -> None:
        self.status = status
        self.reason = reason
        self.url = url
        where = f" ({format_peer(peer)})" if peer is not None else ""
        super().__init__(f"{status} {reason} from {url}{where}")
