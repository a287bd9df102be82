"""How a creosote message is shown: one safe, bounded line with time, sender and notes."""

from __future__ import annotations

import time

from ..errors import format_peer
from ._protocol import Message, safe_text

__all__ = ["MAX_LINE_TEXT", "cut_text", "format_line", "format_time", "notes"]


MAX_LINE_TEXT = 16 * 1024
"""Characters of message text :func:`format_line` shows before cutting the line."""


def format_line(message: Message, *, date: bool = False, max_text: int = MAX_LINE_TEXT) -> str:
    """One printable line: time, sender, the safe text, and notes on what went wrong.

    The text is :attr:`Message.text` (control characters escaped), so the line is
    safe for a terminal or a log file whatever the sender put in the datagram.  Text
    longer than ``max_text`` characters is cut, and the line says how much was left out.
    """
    when = format_time(message.time, date=date)
    text = cut_text(message, max_text)
    return f"{when} {format_peer(message.sender)} {text}{notes(message)}"


def cut_text(message: Message, max_text: int) -> str:
    """:attr:`Message.text`, cut to about ``max_text`` characters, with a marker.

    Only a prefix of the data is escaped, so a huge message costs no more to show
    than a short one.
    """
    data = message.data
    if len(data) <= max_text:
        return message.text
    text = safe_text(data[: max_text + 4])[:max_text]
    return f"{text}...[{len(data) - max_text} more bytes not shown]"


def format_time(timestamp: float, *, date: bool = False) -> str:
    """Local time as ``HH:MM:SS.mmm`` (``YYYY-MM-DD HH:MM:SS.mmm`` with ``date``)."""
    stamp = time.localtime(timestamp)
    text = time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", stamp)
    return f"{text}.{int(timestamp % 1 * 1000):03d}"


def notes(message: Message) -> str:
    """What the bucket has to say about a message beyond its text (or ``""``)."""
    parts: list[str] = []
    if message.lost and message.reason != "too large":
        shown = ", ".join(map(str, message.missing))
        more = ", ..." if message.lost > len(message.missing) else ""
        parts.append(
            f"incomplete ({message.reason}): {message.lost} of {message.chunks} chunks lost "
            f"[{shown}{more}]"
        )
    if message.out_of_order:
        parts.append("chunks out of order")
    if message.reason == "too large":
        parts.append("too large: cut by the bucket (max_message_size)")
    if message.truncated:
        parts.append("truncated by the sender")
    if message.malformed:
        parts.append(f"malformed frame: {message.malformed}")
    return f"  [{'; '.join(parts)}]" if parts else ""
