"""The sentinels of asyncnet's sans-IO parsers (one-member enums, so type checkers narrow them)."""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["END_OF_BODY", "EOF", "NEED_DATA", "EndOfBody", "EndOfInput", "NeedData"]


class NeedData(enum.Enum):
    """Type of the :data:`NEED_DATA` sentinel (a one-member enum, so type checkers narrow it)."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"

    __str__ = __repr__


NEED_DATA: Final = NeedData.NEED_DATA
"""Returned by ``LineBuffer.next_line`` (and ``Framer.next_frame``) when no complete
line (frame) is buffered yet."""


class EndOfInput(enum.Enum):
    """Type of the :data:`EOF` sentinel."""

    EOF = "EOF"

    def __repr__(self) -> str:
        return "EOF"


class EndOfBody(enum.Enum):
    """Type of the :data:`END_OF_BODY` sentinel."""

    END_OF_BODY = "END_OF_BODY"

    def __repr__(self) -> str:
        return "END_OF_BODY"


EOF: Final = EndOfInput.EOF
"""Returned by ``LineBuffer.next_line`` once input has ended and every line was taken."""

END_OF_BODY: Final = EndOfBody.END_OF_BODY
"""Returned by ``LineBuffer.next_body_chunk`` once the body's terminator was read."""
