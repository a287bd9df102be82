"""What every asyncnet HTTP server checks before it trusts a request: one rule, one log.

* :class:`HostRule`: which ``Host`` header values name this server.  A page on
  any web site can re-point its own name at 127.0.0.1 (DNS rebinding) and then
  read what a loopback-only server answers, but the browser still sends the
  page's own name in ``Host``.  So a server that shows secrets to loopback (the
  creosote web view, the web server's debug pages) answers only a ``Host`` that
  is a loopback name or address, or a name it was told to trust.
* :func:`one_line_http_logger`: aiohttp logs a traceback for every malformed
  request ("Error handling request"); a hostile or broken client then writes
  nine log lines per request.  Those become one line, at most one per
  :data:`~asyncnet._ratelimit.INTERVAL` seconds with a count, while a
  bug in the server's own code keeps its traceback.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable

from aiohttp.http import HttpProcessingError

from ._loopback import is_loopback_host
from ._ratelimit import RateLimitedLog

__all__ = ["HostRule", "one_line_http_logger", "split_host"]

# RFC 3986's host: a registered name (letters, digits, '-', '.', '_', '~') or an
# IPv6 literal in brackets.  Anything else (spaces, '%', '@', a second ':') is
# not a name a browser would send, so it matches nothing.
_HOST = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9._~-]+))(?::(?P<port>[0-9]{1,5}))?")


def split_host(value: str | None) -> tuple[str, int | None] | None:
    """``(name, port)`` of a ``Host`` header value (lower case, IPv6 without brackets).

    ``None`` when the value is missing or malformed; ``port`` is ``None`` when the
    value names none.
    """
    if value is None:
        return None
    match = _HOST.fullmatch(value.strip().lower())
    if match is None:
        return None
    port = int(match["port"]) if match["port"] is not None else None
    if port is not None and not 0 < port < 65536:
        return None
    name = match["v6"] or match["name"]
    if name.endswith("."):
        return None  # "localhost." would otherwise be a second spelling of everything
    return name, port


class HostRule:
    """Accepts a ``Host`` that is a loopback name or address, or one of ``names``.

    ``port``, when given, must match as well (a ``Host`` without a port means 80).
    Loopback means ``localhost`` and any loopback address literal
    (``127.0.0.2``, ``[::1]``): a rebinding page can never make a browser send
    those for its own origin.
    """

    __slots__ = ("names", "port")

    def __init__(self, names: Iterable[str] = (), *, port: int | None = None) -> None:
        self.names = frozenset(name.strip("[]").lower() for name in names if name)
        self.port = port

    def allows(self, value: str | None) -> bool:
        """True when the ``Host`` header ``value`` names this server."""
        parsed = split_host(value)
        if parsed is None:
            return False
        name, port = parsed
        if self.port is not None and (80 if port is None else port) != self.port:
            return False
        return name in self.names or is_loopback_host(name)


class _PeerErrorsOneLine(logging.Filter):
    """aiohttp's records about a peer's malformed request: one line, rate-limited."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        self._log = RateLimitedLog()

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True  # not the peer's doing: keep the traceback
        since = 1
        if record.levelno >= logging.WARNING:  # debug records are not worth a slot
            since = self._log.hit(time.monotonic())
            if not since:
                return False
        # The peer's bytes may be quoted in the message: one line, nothing that
        # could drive a terminal.
        text = " ".join(str(error).split())
        detail = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)[:200]
        what = record.getMessage()
        record.msg = "%s: %s: %s (%d such since the last report)"
        record.args = (self.label, what, detail, since)
        record.exc_info = None
        record.exc_text = None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def one_line_http_logger(name: str, label: str) -> logging.Logger:
    """A logger for aiohttp's request handler (``AppRunner(logger=...)``).

    A peer's malformed request becomes one line naming ``label`` (the server),
    rate-limited; anything else passes unchanged.  One per server, so each has
    its own rate limit; it is not registered with :mod:`logging` (nothing
    accumulates) and passes records on to the logger ``name``, where handlers and
    levels are configured.
    """
    logger = logging.Logger(name)
    logger.parent = logging.getLogger(name)
    logger.addFilter(_PeerErrorsOneLine(label))
    return logger
