"""Checks for server options: a bad value fails at construction, naming the option."""

from __future__ import annotations

import socket
from typing import Any

from ..errors import ConfigurationError

__all__ = ["check_bytes", "check_count", "check_family", "check_port", "check_seconds"]

_FAMILIES = {socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_port(port: Any, option: str = "port") -> int:
    """A port number: an ``int`` in 0..65535 (0 = any free port)."""
    if not isinstance(port, int) or isinstance(port, bool):
        raise ConfigurationError(f"{option} must be an int in 0..65535, not {port!r}")
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"{option} must be in 0..65535, not {port!r}")
    return port


def check_seconds(option: str, value: Any, *, optional: bool = True, zero: bool = False) -> None:
    """A duration: a number > 0 (>= 0 with ``zero``), or ``None`` when ``optional``."""
    if value is None and optional:
        return
    bound = ">= 0" if zero else "> 0"
    if not _is_number(value) or value != value or (value < 0 if zero else value <= 0):
        extra = " or None" if optional else ""
        raise ConfigurationError(
            f"{option} must be a number of seconds {bound}{extra}, not {value!r}"
        )


def check_count(option: str, value: Any, *, minimum: int = 1, optional: bool = False) -> None:
    """A whole number >= ``minimum`` (or ``None`` when ``optional``)."""
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        extra = " or None" if optional else ""
        raise ConfigurationError(f"{option} must be an int >= {minimum}{extra}, not {value!r}")


def check_bytes(option: str, value: Any) -> None:
    """``bytes`` or ``None``."""
    if value is not None and not isinstance(value, bytes):
        raise ConfigurationError(f"{option} must be bytes or None, not {value!r}")


def check_family(value: Any) -> None:
    """``socket.AF_UNSPEC``, ``AF_INET`` or ``AF_INET6``."""
    if value not in _FAMILIES:
        raise ConfigurationError(
            f"family must be socket.AF_UNSPEC, AF_INET or AF_INET6, not {value!r}"
        )
