"""Sans-IO creosote wire format: chunking, the optional frame header, reassembly.

Mr. Creosote (the tutorial's ``creosote.py``) spews a debug message to a UDP port in
``BUFSIZE``-sized datagrams and a *bucket* prints whatever arrives.  This module is
the part of that which never touches a socket: it turns a message into datagrams and
datagrams back into messages, so the asyncio emitter and bucket, the logging handler
and the tests all share one implementation.  It imports no asyncio.

Two modes
---------
**Raw** (the tutorial's): the message bytes are cut into datagrams of at most
``bufsize`` bytes and sent as they are.  A classic bucket prints each datagram on a
line of its own; an asyncnet bucket does the same (it cannot know which datagrams
belong together, nor which were lost).  An empty message sends nothing, as in the
tutorial's ``while msg:`` loop.

**Framed** (asyncnet's): every datagram starts with an 18-byte header, then up to
``bufsize - 18`` bytes of the message, so no datagram is ever larger than
``bufsize`` and a classic bucket reading ``recvfrom(BUFSIZE)`` still shows every
byte (the header appears as escaped binary before the text).  An asyncnet bucket
uses the header to reassemble multi-chunk messages, to tell which chunks were lost
or came out of order, and to keep interleaved messages from different senders (and
different emitters in one process) apart.  An empty message is one datagram with a
header and no payload.

Header, network byte order (``struct`` format ``"!4sBBIII"``)::

    offset  size  field
    0       4     magic       b"\\x00MrC"  (a NUL first: no text message starts like this)
    4       1     version     1
    5       1     flags       bit 0: TRUNCATED, the sender cut the message at its
                              size limit (the payload ends with TRUNCATION_MARKER);
                              other bits are reserved, sent as 0, ignored on receipt
    6       4     message id  chosen by the sender, e.g. a counter; with the sender's
                              address it identifies the message
    10      4     index       this chunk's position, 0 .. count-1
    14      4     count       chunks in the message, >= 1
    18      ...   payload     this chunk's bytes (the last chunk may be shorter)

A datagram that starts with the magic but has a bad header (short, unknown version,
``count == 0``, ``index >= count``, a count that disagrees with earlier chunks of the
same message) is *malformed*: the bucket shows it as a raw message and counts it.
Anything that does not start with the magic is a raw message.

Reassembly and memory
---------------------
:class:`Reassembler` keeps partial messages keyed by ``(sender, message id)`` and is
bounded three ways: a message longer than ``max_message_size`` bytes is cut there
(delivered at once, ending with :data:`CUT_MARKER`; its further chunks are dropped
and counted, in O(1) each, so one huge message costs the bucket no more than one
of the limit's size), at most ``max_partials`` messages may be partial at once and
their buffered bytes (plus :data:`CHUNK_OVERHEAD` per chunk) may not exceed
``max_partial_bytes`` (the oldest partial is given up first), and a partial message
with no new chunk for ``expiry`` seconds is given up.  A message given up is
not lost silently: it is delivered as an incomplete :class:`Message` whose
``missing`` names the chunks that never came.  UDP gives no ordering, so chunks may
arrive in any order; duplicates are ignored and counted, including a late copy of a
chunk of a message already delivered (the ids of the last ``4 * max_partials``
messages are remembered for ``expiry`` seconds for that).

Nothing here authenticates anybody: UDP source addresses can be forged, and so can
frames.  The limits above are what keeps a hostile sender from hurting the bucket.

Timestamps: :meth:`Reassembler.feed` and :meth:`Reassembler.expire` take ``now`` from
the caller (any clock in seconds), which is also stamped on each message; the
asyncio bucket passes ``time.time()``.

The format above is a specification, and its encoder (:func:`chunk_framed`) and
decoder (:class:`Reassembler`) are its one implementation: they are kept beside it so
that a change to one is made, read and tested with the others.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import ConfigurationError

__all__ = [
    "DEFAULT_BUFSIZE",
    "FLAG_TRUNCATED",
    "HEADER",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_DATAGRAM",
    "CUT_MARKER",
    "MAX_MESSAGE_SIZE",
    "TRUNCATION_MARKER",
    "VERSION",
    "Header",
    "Message",
    "Reassembler",
    "ReassemblerStats",
    "chunk_framed",
    "chunk_raw",
    "decode_header",
    "encode_header",
    "prepare",
    "safe_text",
]

MAGIC: Final = b"\x00MrC"
VERSION: Final = 1
FLAG_TRUNCATED: Final = 0x01
HEADER: Final = struct.Struct("!4sBBIII")
HEADER_SIZE: Final = HEADER.size  # 18
DEFAULT_BUFSIZE: Final = 1024
"""The tutorial's chunk size: no datagram is larger than this by default."""
MAX_DATAGRAM: Final = 65507
"""The largest UDP payload over IPv4; a larger ``bufsize`` would fail with EMSGSIZE."""
MAX_MESSAGE_SIZE: Final = 64 * 1024
"""Default limit on one message, for the sender and the bucket (both cut, with a marker)."""
TRUNCATION_MARKER: Final = b"...[creosote: message truncated]"
"""Ends a message that the sender cut at its size limit."""
CUT_MARKER: Final = b"...[creosote: message too large, cut by the bucket]"
"""Ends a message that the bucket cut at its ``max_message_size``."""
CHUNK_OVERHEAD: Final = 96
"""Bytes a held chunk costs beyond its payload (the bytes object, the dict slot); counted
against ``max_partial_bytes`` so that a flood of tiny chunks is bounded too."""
_MAX_ID: Final = 0xFFFFFFFF
_MISSING_SHOWN: Final = 16


@dataclass(frozen=True, slots=True)
class Header:
    """The framed-mode header of one datagram."""

    message_id: int
    index: int
    count: int
    flags: int = 0
    version: int = VERSION

    @property
    def truncated(self) -> bool:
        """The sender cut this message at its size limit."""
        return bool(self.flags & FLAG_TRUNCATED)


def encode_header(header: Header) -> bytes:
    """Pack ``header`` into its 18 bytes (raises ``ConfigurationError`` if out of range)."""
    if not 0 <= header.message_id <= _MAX_ID:
        raise ConfigurationError(f"message id {header.message_id} is not a 32-bit number")
    if not 1 <= header.count <= _MAX_ID or not 0 <= header.index < header.count:
        raise ConfigurationError(f"chunk {header.index} of {header.count} is out of range")
    return HEADER.pack(
        MAGIC, header.version, header.flags & 0xFF, header.message_id, header.index, header.count
    )


def decode_header(datagram: bytes) -> Header | str | None:
    """Parse a framed datagram's header.

    Returns ``None`` for a raw datagram (no magic), a :class:`Header` for a valid
    frame, or a string saying why a datagram that starts with the magic is malformed.
    """
    if not datagram.startswith(MAGIC):
        return None
    if len(datagram) < HEADER_SIZE:
        return f"short header ({len(datagram)} of {HEADER_SIZE} bytes)"
    _, version, flags, message_id, index, count = HEADER.unpack_from(datagram)
    if version != VERSION:
        return f"unknown version {version}"
    if count == 0:
        return "chunk count 0"
    if index >= count:
        return f"chunk index {index} >= count {count}"
    return Header(message_id, index, count, flags, version)


def _check_bufsize(bufsize: int, framed: bool) -> None:
    low = HEADER_SIZE + 1 if framed else 1
    if not low <= bufsize <= MAX_DATAGRAM:
        mode = "framed" if framed else "raw"
        raise ConfigurationError(
            f"bufsize must be in {low}..{MAX_DATAGRAM} in {mode} mode, not {bufsize!r}"
        )


def prepare(message: str | bytes, max_message_size: int = MAX_MESSAGE_SIZE) -> tuple[bytes, bool]:
    """Encode ``message`` (UTF-8; lone surrogates escaped) and cut it to the size limit.

    Returns ``(data, truncated)``.  A cut message ends with :data:`TRUNCATION_MARKER`
    and is exactly ``max_message_size`` bytes long, so a receiver can always tell.
    """
    if max_message_size <= len(TRUNCATION_MARKER):
        raise ConfigurationError(
            f"max_message_size must exceed {len(TRUNCATION_MARKER)}, not {max_message_size!r}"
        )
    if isinstance(message, str):
        data = message.encode("utf-8", "backslashreplace")
    else:
        data = bytes(message)
    if len(data) <= max_message_size:
        return data, False
    return data[: max_message_size - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER, True


def chunk_raw(data: bytes, bufsize: int = DEFAULT_BUFSIZE) -> list[bytes]:
    """The tutorial's loop: ``data`` in datagrams of at most ``bufsize`` bytes."""
    _check_bufsize(bufsize, framed=False)
    view = memoryview(data)
    return [bytes(view[i : i + bufsize]) for i in range(0, len(data), bufsize)]


def chunk_framed(
    data: bytes, message_id: int, bufsize: int = DEFAULT_BUFSIZE, *, truncated: bool = False
) -> list[bytes]:
    """``data`` as framed datagrams of at most ``bufsize`` bytes, header included."""
    _check_bufsize(bufsize, framed=True)
    step = bufsize - HEADER_SIZE
    count = max(1, -(-len(data) // step))
    if count > _MAX_ID:
        raise ConfigurationError(f"{len(data)} bytes need {count} chunks; the limit is {_MAX_ID}")
    flags = FLAG_TRUNCATED if truncated else 0
    view = memoryview(data)
    return [
        HEADER.pack(MAGIC, VERSION, flags, message_id & _MAX_ID, index, count)
        + view[index * step : (index + 1) * step]
        for index in range(count)
    ]


def safe_text(data: bytes) -> str:
    """The tutorial's ``repr(data)[1:-1]``, kinder to text: printable and one line.

    UTF-8 text is shown as text; backslash, control characters (``\\n``, ``\\x1b``,
    ``\\x00``...) and other unprintable characters (bidi overrides, zero-width
    spaces) are escaped the way ``repr`` escapes them (``\\uNNNN`` above ASCII), and
    bytes that are not UTF-8 are shown as ``\\xNN``.  The result never contains a
    control character, so it is safe to print to a terminal or write to a log, and
    different messages never look the same.
    """
    text = data.decode("utf-8", "surrogateescape")
    if text.isprintable() and "\\" not in text:
        return text  # the common case: plain text, nothing to escape
    out: list[str] = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, smuggled by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char == "\\":
            out.append("\\\\")
        elif char.isprintable():
            out.append(char)
        elif code < 0x80:
            out.append(repr(char)[1:-1])  # \n, \t, \x1b...
        else:
            # Never \xNN here: that would look like an undecodable byte.
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Message:
    """One message as a bucket delivers it: complete, raw, or given up as incomplete."""

    data: bytes
    """The message bytes (for an incomplete message: the chunks that came, in order)."""
    sender: Any
    """Who sent it: the source address, ``(host, port)`` for UDP."""
    time: float
    """When it was completed (or given up), on the clock the caller passed as ``now``."""
    framed: bool = False
    """It came in framed mode (False: a raw datagram, or a malformed frame shown raw)."""
    message_id: int | None = None
    """The sender's message id (framed mode only)."""
    chunks: int = 1
    """How many chunks the message had (the header's count)."""
    missing: tuple[int, ...] = ()
    """The first (at most 16) indices of chunks that never came."""
    lost: int = 0
    """How many chunks never came; 0 for a complete message."""
    out_of_order: bool = False
    """Some chunks arrived after a chunk with a higher index."""
    truncated: bool = False
    """The sender cut the message at its size limit (the data ends with the marker)."""
    malformed: str | None = None
    """Why a datagram that starts with the frame magic was not accepted as a frame."""
    reason: str | None = None
    """Why an incomplete message was given up: ``expired``, ``evicted``, ``too large``
    (cut at the bucket's ``max_message_size``: the data ends with :data:`CUT_MARKER`)
    or ``closed`` (the bucket stopped)."""

    @property
    def complete(self) -> bool:
        """Every chunk arrived."""
        return self.lost == 0

    @property
    def text(self) -> str:
        """:func:`safe_text` of the data: what a bucket prints."""
        return safe_text(self.data)


@dataclass(slots=True)
class ReassemblerStats:
    """Counters kept by a :class:`Reassembler`; it only ever adds to them."""

    datagrams: int = 0
    raw: int = 0
    """Datagrams delivered as raw messages (malformed frames included)."""
    chunks: int = 0
    """Framed datagrams accepted as chunks."""
    messages: int = 0
    """Complete framed messages delivered."""
    incomplete: int = 0
    """Framed messages given up (expired, evicted, too large)."""
    cut: int = 0
    """Messages cut at ``max_message_size`` (also counted in ``incomplete``)."""
    chunks_dropped: int = 0
    """Chunks of cut messages that arrived after the cut, dropped unread."""
    chunks_lost: int = 0
    """Chunks missing from the incomplete messages."""
    duplicates: int = 0
    out_of_order: int = 0
    """Messages whose chunks came out of order."""
    malformed: int = 0


@dataclass(slots=True)
class _Partial:
    sender: Any
    message_id: int
    count: int
    flags: int
    last_seen: float
    chunks: dict[int, bytes] = field(default_factory=dict)
    size: int = 0
    cost: int = 0
    highest: int = -1
    out_of_order: bool = False

    def missing(self) -> tuple[list[int], int]:
        shown: list[int] = []
        index = 0
        # Bounded by len(chunks) + _MISSING_SHOWN steps, whatever count claims.
        while index < self.count and len(shown) < _MISSING_SHOWN:
            if index not in self.chunks:
                shown.append(index)
            index += 1
        return shown, self.count - len(self.chunks)

    def joined(self, limit: int | None = None) -> bytes:
        """The chunks in index order (at most ``limit`` bytes of them)."""
        if limit is None:
            return b"".join(self.chunks[i] for i in sorted(self.chunks))
        parts: list[bytes] = []
        size = 0
        for index in sorted(self.chunks):
            if size >= limit:
                break
            parts.append(self.chunks[index])
            size += len(self.chunks[index])
        return b"".join(parts)[:limit]

    def message(
        self,
        data: bytes,
        now: float,
        *,
        missing: tuple[int, ...] = (),
        lost: int = 0,
        reason: str | None = None,
    ) -> Message:
        """A framed :class:`Message` of ``data`` with this partial's id, count and flags."""
        return Message(
            data,
            self.sender,
            now,
            framed=True,
            message_id=self.message_id,
            chunks=self.count,
            missing=missing,
            lost=lost,
            out_of_order=self.out_of_order,
            truncated=bool(self.flags & FLAG_TRUNCATED),
            reason=reason,
        )


class Reassembler:
    """Datagrams in, :class:`Message` objects out, with bounded memory.

    ``feed(datagram, sender, now)`` returns the messages that datagram completed
    (usually zero or one, plus any partial message it pushed out of the limits);
    ``expire(now)`` returns the partial messages that have waited longer than
    ``expiry`` seconds.  Call ``expire`` now and then when no datagrams arrive, so a
    message whose last chunk was lost is still reported.
    """

    def __init__(
        self,
        *,
        max_message_size: int = MAX_MESSAGE_SIZE,
        max_partials: int = 256,
        max_partial_bytes: int = 16 * 1024 * 1024,
        expiry: float = 5.0,
    ) -> None:
        if max_message_size < 1 or max_partials < 1 or max_partial_bytes < 1:
            raise ConfigurationError("reassembly limits must be >= 1")
        if expiry <= 0:
            raise ConfigurationError(f"expiry must be > 0, not {expiry!r}")
        self.max_message_size = max_message_size
        self.max_partials = max_partials
        self.max_partial_bytes = max_partial_bytes
        self.expiry = expiry
        self.stats = ReassemblerStats()
        # Least recently touched first: eviction and expiry both start at the front.
        self._partials: OrderedDict[tuple[Hashable, int], _Partial] = OrderedDict()
        # Messages delivered in the last `expiry` seconds (bounded), so that a late
        # duplicate chunk is recognised instead of starting a bogus partial message.
        self._done: OrderedDict[tuple[Hashable, int], float] = OrderedDict()
        # Messages cut at max_message_size whose later chunks are still coming: each
        # is dropped on a dict lookup, and the entry lives while they keep coming.
        self._cut: OrderedDict[tuple[Hashable, int], float] = OrderedDict()
        self._bytes = 0

    @property
    def partial_messages(self) -> int:
        """Messages waiting for more chunks right now."""
        return len(self._partials)

    @property
    def partial_bytes(self) -> int:
        """Bytes held for partial messages right now (payload plus per-chunk overhead)."""
        return self._bytes

    def feed(self, datagram: bytes, sender: Any, now: float) -> list[Message]:
        """Take one datagram from ``sender``; return the messages ready now."""
        self.stats.datagrams += 1
        out = self.expire(now)
        header = decode_header(datagram)
        if header is None:
            self.stats.raw += 1
            if len(datagram) > self.max_message_size:
                self.stats.cut += 1
                keep = max(self.max_message_size - len(CUT_MARKER), 0)
                data = bytes(datagram[:keep]) + CUT_MARKER
                out.append(Message(data, sender, now, reason="too large"))
            else:
                out.append(Message(bytes(datagram), sender, now))
            return out
        if isinstance(header, str):
            out.append(self._malformed(datagram, sender, now, header))
            return out
        payload = bytes(datagram[HEADER_SIZE:])
        key = (_hashable(sender), header.message_id)
        if key in self._cut:
            self.stats.chunks_dropped += 1  # the rest of a message already cut
            self._cut[key] = now
            self._cut.move_to_end(key)
            return out
        if key in self._done:
            self.stats.duplicates += 1  # a late copy of a chunk of a delivered message
            return out
        if header.count == 1:
            self._remember(key, now)
            self.stats.chunks += 1
            if len(payload) > self.max_message_size:  # one datagram can hold 64 KiB
                single = _Partial(sender, header.message_id, 1, header.flags, now, {0: payload})
                out.append(self._cut_message(single, now))
                return out
            self.stats.messages += 1
            out.append(
                Message(
                    payload,
                    sender,
                    now,
                    framed=True,
                    message_id=header.message_id,
                    truncated=header.truncated,
                )
            )
            return out
        partial = self._partials.get(key)
        if partial is None:
            partial = _Partial(sender, header.message_id, header.count, header.flags, now)
            self._partials[key] = partial
        elif partial.count != header.count:
            why = f"chunk count {header.count} disagrees with {partial.count} of earlier chunks"
            out.append(self._malformed(datagram, sender, now, why))
            return out
        self._partials.move_to_end(key)
        partial.last_seen = now
        if header.index in partial.chunks:
            self.stats.duplicates += 1
            return out
        self.stats.chunks += 1
        if header.index < partial.highest:
            partial.out_of_order = True
        partial.highest = max(partial.highest, header.index)
        partial.chunks[header.index] = payload
        partial.size += len(payload)
        partial.cost += len(payload) + CHUNK_OVERHEAD
        self._bytes += len(payload) + CHUNK_OVERHEAD
        if partial.size > self.max_message_size:
            del self._partials[key]
            self._bytes -= partial.cost
            if len(partial.chunks) < partial.count:
                self._cut[key] = now  # its remaining chunks are dropped on arrival
                if len(self._cut) > self.max_partials * 4:
                    self._cut.popitem(last=False)
            else:
                self._remember(key, now)
            out.append(self._cut_message(partial, now))
            return out
        if len(partial.chunks) == partial.count:
            del self._partials[key]
            self._remember(key, now)
            self._bytes -= partial.cost
            self.stats.messages += 1
            if partial.out_of_order:
                self.stats.out_of_order += 1
            out.append(partial.message(partial.joined(), now))
            return out
        while len(self._partials) > self.max_partials or self._bytes > self.max_partial_bytes:
            oldest = next(iter(self._partials))
            out.append(self._give_up(oldest, now, "evicted"))
        return out

    def expire(self, now: float) -> list[Message]:
        """Give up the partial messages that have had no chunk for ``expiry`` seconds."""
        out: list[Message] = []
        deadline = now - self.expiry
        done = self._done
        while done and next(iter(done.values())) <= deadline:
            done.popitem(last=False)
        cut = self._cut
        while cut and next(iter(cut.values())) <= deadline:
            cut.popitem(last=False)
        while self._partials:
            key, partial = next(iter(self._partials.items()))
            if partial.last_seen > deadline:
                break
            out.append(self._give_up(key, now, "expired"))
        return out

    def flush(self, now: float, reason: str = "closed") -> list[Message]:
        """Give up every partial message (at shutdown) and return them."""
        return [self._give_up(key, now, reason) for key in list(self._partials)]

    def _remember(self, key: tuple[Hashable, int], now: float) -> None:
        self._done[key] = now
        if len(self._done) > self.max_partials * 4:
            self._done.popitem(last=False)

    def _cut_message(self, partial: _Partial, now: float) -> Message:
        """``partial`` cut at ``max_message_size``, ending with :data:`CUT_MARKER`."""
        keep = max(self.max_message_size - len(CUT_MARKER), 0)
        data = partial.joined(keep) + CUT_MARKER
        kept = len(partial.chunks)
        self.stats.incomplete += 1
        self.stats.cut += 1
        return partial.message(data, now, lost=max(partial.count - kept, 1), reason="too large")

    def _give_up(self, key: tuple[Hashable, int], now: float, reason: str) -> Message:
        partial = self._partials.pop(key)
        self._bytes -= partial.cost
        shown, lost = partial.missing()
        self.stats.incomplete += 1
        self.stats.chunks_lost += lost
        data = partial.joined()
        return partial.message(data, now, missing=tuple(shown), lost=lost, reason=reason)

    def _malformed(self, datagram: bytes, sender: Any, now: float, why: str) -> Message:
        self.stats.malformed += 1
        self.stats.raw += 1
        return Message(bytes(datagram), sender, now, malformed=why)


def _hashable(sender: Any) -> Hashable:
    return sender if isinstance(sender, Hashable) else repr(sender)
