"""Keyword options declared once, as a ``TypedDict`` whose annotations carry the defaults.

A function that takes ``**options: Unpack[SomeOptions]`` gets keyword arguments a
type checker verifies (a misspelt name or a wrong type is an error), while each
option's name, type, default and docstring stay in one declaration::

    class SomeOptions(TypedDict, total=False):
        port: Annotated[int, Default(0)]
        \"\"\"0 picks a free port.\"\"\"

At run time :func:`resolve` fills in the defaults and refuses a name the
declaration lacks, with the :class:`TypeError` Python raises for a keyword.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, TypeVar, cast, get_type_hints

__all__ = ["Default", "check_names", "defaults_of", "resolve"]

_Options = TypeVar("_Options", bound=Mapping[str, Any])


class Default:
    """Marks the value an option takes when the caller leaves it out."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Default({self.value!r})"


@functools.cache
def defaults_of(declared: type[Mapping[str, Any]]) -> Mapping[str, object]:
    """Every option of ``declared`` and its default (read from the annotations once)."""
    defaults = {}
    for key, hint in get_type_hints(declared, include_extras=True).items():
        marks = [mark for mark in getattr(hint, "__metadata__", ()) if isinstance(mark, Default)]
        if len(marks) != 1:
            raise TypeError(f"{declared.__name__}.{key} needs exactly one Default(...)")
        defaults[key] = marks[0].value
    return defaults


def check_names(
    caller: str, declared: type[Mapping[str, Any]], given: Mapping[str, object]
) -> None:
    """Raise :class:`TypeError` for a name ``declared`` lacks, as Python does for a keyword."""
    known = defaults_of(declared)
    for key in given:
        if key not in known:
            raise TypeError(f"{caller}() got an unexpected keyword argument {key!r}")


def resolve(caller: str, declared: type[_Options], given: _Options) -> _Options:
    """``given`` with every option it leaves out at its default (each key present).

    A name ``declared`` does not have raises :class:`TypeError`, naming ``caller``.
    """
    check_names(caller, declared, given)
    return cast(_Options, {**defaults_of(declared), **given})
