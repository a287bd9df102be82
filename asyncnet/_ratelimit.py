"""One rate-limited log for every refusal: count each event, log a line per interval.

A hostile peer decides how often a refusal happens; the log must not let it decide
how much is written.  Every refusal in asyncnet (accept failures, PROXY sources,
malformed HTTP requests, CGI limits, reflection drops, failed logins) counts each
event and logs at most one line per ``INTERVAL`` seconds, with the count since the
last line.
"""

from __future__ import annotations

__all__ = ["INTERVAL", "RateLimitedLog"]

INTERVAL = 10.0
"""Seconds between two log lines about one kind of refusal."""


class RateLimitedLog:
    """At most one log line per ``interval`` seconds; every event is still counted.

    ``hit(now)`` counts one event and returns the number of events since the last
    line when a line is due now (the caller logs it), or 0 when it is not.
    """

    __slots__ = ("_last", "_since", "interval")

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._last = -float("inf")
        self._since = 0

    def hit(self, now: float) -> int:
        """Count one event; return how many to report if a line is due, else 0."""
        self._since += 1
        if now - self._last < self.interval:
            return 0
        self._last = now
        since, self._since = self._since, 0
        return since
