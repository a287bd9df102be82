"""Peer text made safe to show: escaped for terminals, and nicknames that cannot impersonate.

Whatever a peer sends may end up on somebody's terminal (a chat relays it, a client
prints a server's reply).  :func:`printable` escapes everything a terminal would act
on instead of showing: C0 and C1 controls (ESC starts the sequences that clear a
screen or retitle a window, CR rewrites the current line, BEL rings), DEL, the
bidirectional controls that reorder text (the "Trojan Source" trick), and the line and
paragraph separators U+2028 / U+2029, which some terminals and most web views treat as
line breaks -- a fake new line that starts with a server's notice prefix.

:func:`nickname_problem` is the nickname policy of the chat (and of anything that
shows user-chosen names): NFKC-normalised, visible characters only, and no name whose
*skeleton* (a subset of Unicode TR39's confusable skeleton: ``alice`` spelt with a
Cyrillic U+0430, ``AIice`` with a capital ``I``, ``rnallory`` for ``mallory``) equals
that of a name already present.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

__all__ = [
    "WIRE_ENCODING",
    "line_bytes",
    "nickname_problem",
    "normalize_nickname",
    "not_text",
    "printable",
    "skeleton",
]

WIRE_ENCODING = "utf-8"
"""The interactive clients' encoding on the network."""

_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_SEPARATORS = frozenset("\u2028\u2029")


def _escape(ch: str) -> bool:
    return ch < " " or "\x7f" <= ch <= "\x9f" or ch in _BIDI_CONTROLS or ch in _SEPARATORS


def printable(text: str) -> str:
    """``text`` with control characters (C0, DEL, C1), bidi controls and the U+2028 /
    U+2029 separators escaped as ``\\xNN`` / ``\\uNNNN``."""
    if text.isprintable() and text.isascii():
        return text
    if not any(_escape(ch) for ch in text):
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if _escape(ch) else ch for ch in text
    )


# -- nicknames ------------------------------------------------------------------------

# Letters that render as nothing (or as blank space) although Unicode calls them letters
# or symbols: Hangul fillers, the braille blank, Mongolian vowel separator.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e\u034f")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})

# After case folding ``I`` and ``l`` differ no more than ``i`` and ``l`` do, so all of
# them (and ``1``, ``|``) are one letter here; ``0`` is ``o``.
_FOLDED_LATIN = str.maketrans({"i": "l", "1": "l", "|": "l", "0": "o"})
# Then, on case-folded text, letters of other scripts that look like Latin ones
# (Cyrillic, Greek, Armenian and Latin variants; escaped, since they look like Latin.)
_FOLDED = str.maketrans(
    "\u0430\u0432\u0435\u0451\u043e\u0440\u0441\u0443\u0445\u043a"
    "\u043c\u043d\u0442\u0456\u0457\u0458\u0455\u0501\u051b\u051d"
    "\u0461\u04af\u04bb\u04cf\u0261\u03b1\u03b2\u03b5\u03b6\u03b7"
    "\u03b9\u03ba\u03bc\u03bd\u03bf\u03c1\u03c4\u03c5\u03c7\u03f2"
    "\u03c9\u0585\u057d\u0570\u0578\u0581\u0566\u0131\u0251\u028f"
    "\u0269\ua7b5\u017f",
    "abeeopcyxkmhtiijsdqwwyhlgabeznikuvoptuxcwouhngqiayibf",
)
_SEQUENCES = (("rn", "m"), ("vv", "w"), ("cl", "d"))


def normalize_nickname(nick: str) -> str:
    """NFKC form: full-width, ligature and compatibility characters become plain ones."""
    return unicodedata.normalize("NFKC", nick)


def skeleton(nick: str) -> str:
    """What ``nick`` looks like, for comparing (``alice`` with a Cyrillic U+0430 has the
    skeleton of ``alice``).

    A subset of Unicode TR39's skeleton (no data file): decomposed, combining marks
    dropped, case-folded, Cyrillic/Greek/Armenian look-alikes mapped to Latin, ``i``,
    ``1``, ``|`` read as ``l`` and ``0`` as ``o``, and ``rn``/``vv``/``cl`` as
    ``m``/``w``/``d``.
    """
    decomposed = unicodedata.normalize("NFKD", nick)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    text = bare.casefold().translate(_FOLDED).translate(_FOLDED_LATIN)
    for sequence, letter in _SEQUENCES:
        text = text.replace(sequence, letter)
    return text


def nickname_problem(
    nick: str, present: Iterable[str] = (), *, max_length: int = 24, reserved: str = ""
) -> str | None:
    """What is wrong with ``nick`` (already normalised) next to the ``present`` names, or
    ``None``.  ``reserved`` lists characters a nickname may not start with."""
    if not nick or len(nick) > max_length:
        return f"a nickname is 1 to {max_length} visible characters without spaces"
    if any(
        unicodedata.category(ch) in _REFUSED_CATEGORIES or ch in _INVISIBLE for ch in nick
    ) or unicodedata.combining(nick[0]):
        return f"a nickname is 1 to {max_length} visible characters without spaces"
    if nick[0] in reserved:
        return f"a nickname cannot start with {', '.join(reserved[:-1])} or {reserved[-1]}"
    mine = skeleton(nick)
    for other in present:
        if skeleton(other) == mine:
            return (
                f"{nick} is taken"
                if other.casefold() == nick.casefold()
                else (f"{nick} looks too much like {other}")
            )
    return None


def line_bytes(line: str) -> bytes:
    """``line`` as bytes to send: text in UTF-8, undecodable input bytes as they came."""
    return line.encode(WIRE_ENCODING, "surrogateescape")


def not_text(line: str, encoding: str = WIRE_ENCODING) -> bool:
    """True when ``line`` holds input bytes that cannot be sent as ``encoding`` text."""
    if line.isascii():
        return False
    try:
        line.encode(encoding)
    except UnicodeEncodeError:
        return True
    return False
