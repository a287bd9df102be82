"""Range and If-Range for one file (RFC 9110 sections 13.1.5 and 14), with no I/O.

aiohttp's ``FileResponse`` reads ``If-Range`` only as a date (an ETag there is
ignored, so a resumed download of a changed file is spliced from two versions),
compares that date with ``<=`` instead of exactly, and answers any Range with
more than one range, or with another unit, with 416.  The static server decides
here instead:

* :func:`if_range_holds`: the ranges apply only when ``If-Range`` names the
  current representation: its strong ETag (a weak one never matches), or exactly
  its ``Last-Modified`` date.  Otherwise the whole file is sent (200).
* :func:`select_ranges`: the ranges of a ``bytes`` Range header, sorted, with
  overlapping and adjacent ones merged; the unsatisfiable ones dropped (416 if
  nothing is left).  Another unit or a malformed header is ignored (200), as RFC
  9110 14.2 allows, and so are more than ``max_ranges`` ranges: many small or
  overlapping ranges are how a client makes one file cost many times its size
  (the "Apache Killer", CVE-2011-3192).
"""

from __future__ import annotations

import re
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = ["MAX_RANGES", "if_range_holds", "select_ranges"]

MAX_RANGES = 16
"""Ranges served in one response; a request with more gets the whole file."""

# first-last, first- or -suffix; 30 digits is far beyond any file and keeps int() cheap.
_RANGE = re.compile(r"(?P<first>[0-9]{1,30})-(?P<last>[0-9]{0,30})|-(?P<suffix>[0-9]{1,30})")


def select_ranges(
    header: str, size: int, *, max_ranges: int = MAX_RANGES
) -> list[tuple[int, int]] | None:
    """The ``(first, last)`` byte positions (inclusive) a Range header asks for.

    ``None``: send the whole representation (another unit, a malformed header, or
    more than ``max_ranges`` ranges).  ``[]``: nothing is satisfiable (416).
    Otherwise the ranges within ``size`` bytes, sorted and merged where they
    overlap or touch: one range is a plain 206, several a multipart one.
    """
    unit, equals, spec = header.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    items = [item.strip() for item in spec.split(",")]
    items = [item for item in items if item]  # the list syntax allows empty elements
    if not items or len(items) > max_ranges:
        return None
    wanted: list[tuple[int, int]] = []
    for item in items:
        match = _RANGE.fullmatch(item)
        if match is None:
            return None
        if match["suffix"] is not None:
            length = int(match["suffix"])
            if length and size:
                wanted.append((max(0, size - length), size - 1))
            continue
        first = int(match["first"])
        last = int(match["last"]) if match["last"] else None
        if last is not None and last < first:
            return None  # invalid, not merely unsatisfiable
        if first < size:
            wanted.append((first, size - 1 if last is None else min(last, size - 1)))
    wanted.sort()
    merged: list[tuple[int, int]] = []
    for first, last in wanted:
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def if_range_holds(value: str, *, etag: str, last_modified: int) -> bool:
    """Whether an ``If-Range`` value names the current representation.

    ``etag`` is the current strong ETag as sent (with its quotes);
    ``last_modified`` the ``Last-Modified`` time as sent, in whole seconds.
    """
    value = value.strip()
    if value.startswith('"'):
        return value == etag  # strong comparison
    if value.startswith("W/"):
        return False  # a weak validator never allows a range (RFC 9110 13.1.5)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp() == last_modified
