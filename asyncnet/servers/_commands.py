"""CommandHandler: ``VERB args`` lines dispatched to ``do_VERB`` methods.

The shape of POP3, SMTP, FTP's control channel and the chat room's ``/commands``
(aiosmtpd's ``smtp_VERB``, cmd.Cmd's ``do_verb``): each line is a verb and its
arguments, the verb picks a method, and what is allowed depends on the session's
state.  Subclass, define ``do_VERB(self, args)`` methods (``args`` is the rest of
the line, ``""`` if none) and return the reply as :class:`LineHandler` does::

    class Pop3ish(CommandHandler):
        reply_delimiter = b"\\r\\n"
        allowed_verbs = {"AUTHORIZATION": {"USER", "PASS", "QUIT"},
                         "TRANSACTION": {"STAT", "RETR", "QUIT"}}
        state = "AUTHORIZATION"
        unknown_verb_reply = "-ERR unknown command {verb}"

        def do_USER(self, args: str) -> str:
            return "+OK"

Verbs are matched case-insensitively (``user`` runs ``do_USER``) and must be
ASCII letters and digits, so a line can never reach any attribute other than a
``do_`` method.  A verb whose method exists but that :attr:`allowed_verbs` does
not list for the current :attr:`state` gets :attr:`not_allowed_reply`; arguments
longer than :attr:`max_argument_length` get :attr:`argument_too_long_reply` (the
line limit, ``max_line_length``, still bounds the whole line first).

With a :attr:`command_prefix` (the chat's ``"/"``), lines without it are not
commands: they go to :meth:`handle_text`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import ClassVar

from ._handlers import LineHandler

__all__ = ["CommandHandler"]

Reply = str | Awaitable[str | None] | None
"""What a ``do_VERB`` method returns: the reply, an awaitable of it, or ``None`` (no reply)."""


def _is_verb(word: str) -> bool:
    return word.isascii() and word.isalnum()


class CommandHandler(LineHandler):
    """A line handler that runs ``do_VERB(args)`` for each ``VERB args`` line."""

    command_prefix: ClassVar[str] = ""
    """Lines must start with this to be commands (``"/"`` in a chat); others go to
    :meth:`handle_text`.  Empty: every line is a command."""

    allowed_verbs: ClassVar[Mapping[str, Collection[str]] | None] = None
    """Verbs allowed in each :attr:`state` (upper case); ``None`` allows every ``do_`` verb."""

    state: str = "default"
    """The session's state: a key of :attr:`allowed_verbs`.  Set it from ``do_`` methods."""

    max_argument_length: ClassVar[int] = 1024
    """Characters allowed after the verb (RFC 1939 allows 40 per POP3 argument)."""

    unknown_verb_reply: ClassVar[str] = "error: unknown command {verb}"
    not_allowed_reply: ClassVar[str] = "error: {verb} not allowed now"
    argument_too_long_reply: ClassVar[str] = "error: argument too long"
    empty_line_reply: ClassVar[str | None] = None
    """Reply to an empty line (``None``: no reply).  Each reply may use ``{verb}``."""

    def handle_line(self, line: str) -> Reply:
        """Split the line into verb and arguments and run the verb's ``do_`` method."""
        prefix = self.command_prefix
        if prefix:
            if not line.startswith(prefix):
                return self.handle_text(line)
            line = line[len(prefix) :]
        verb, _, args = line.strip(" ").partition(" ")
        if not verb:
            return self.empty_line_reply
        method = self.find_command(verb)
        if method is None:
            return self.unknown_verb(verb, args)
        upper = verb.upper()
        allowed = self.allowed_verbs
        if allowed is not None and upper not in allowed.get(self.state, ()):
            return self.not_allowed_reply.format(verb=upper)
        if len(args) > self.max_argument_length:
            return self.argument_too_long_reply.format(verb=upper)
        return method(args)

    def find_command(self, verb: str) -> Callable[[str], Reply] | None:
        """The ``do_`` method for ``verb``, or ``None`` (override to add aliases)."""
        if not _is_verb(verb):
            return None
        method: Callable[[str], Reply] | None = getattr(self, "do_" + verb.upper(), None)
        return method if callable(method) else None

    def unknown_verb(self, verb: str, args: str) -> Reply:
        """Reply to a verb with no ``do_`` method (default: :attr:`unknown_verb_reply`)."""
        return self.unknown_verb_reply.format(verb=verb.upper() if _is_verb(verb) else "?")

    def handle_text(self, line: str) -> Reply:
        """Handle a line that does not start with :attr:`command_prefix` (default: unknown)."""
        return self.unknown_verb(line.partition(" ")[0], "")

    @classmethod
    def verbs(cls) -> list[str]:
        """Every verb this handler defines, sorted (for help texts and CAPA replies)."""
        return sorted(name[3:] for name in dir(cls) if name.startswith("do_") and name[3:])
