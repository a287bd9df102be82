"""Sans-IO protocol code: parsers and framers that never touch a socket.

Each takes bytes in and hands events out (``NEED_DATA`` when it needs more), so it is
tested without sockets, fed whole and split at every byte:

* lines: :class:`LineBuffer` (limits, ``EOF``) over :class:`LineSplitter` (the one
  line-splitting routine), dot-stuffing for SMTP/POP3 bodies;
* frames: :class:`Framer` with a :class:`Terminator` (:class:`Delimiter`,
  :class:`ByteCount`, :class:`LengthPrefix`), as asynchat's ``set_terminator``;
* the PROXY protocol header (v1 and v2) that load balancers send first.
"""

from ._dotbody import DotBodyReader
from ._framing import (
    ByteCount,
    Delimiter,
    Framer,
    LengthPrefix,
    Terminator,
    TerminatorLike,
    as_terminator,
    encode_frame,
)
from ._lines import (
    LineBuffer,
    LineSplitter,
    check_line_argument,
    dot_stuff,
    dot_unstuff,
    ensure_final_newline,
)
from ._proxy import TLV, ProxyHeader, ProxyHeaderError, ProxyHeaderParser, encode_v1, encode_v2
from ._sentinels import END_OF_BODY, EOF, NEED_DATA, EndOfBody, EndOfInput, NeedData

__all__ = [
    "END_OF_BODY",
    "EOF",
    "NEED_DATA",
    "TLV",
    "ByteCount",
    "Delimiter",
    "DotBodyReader",
    "EndOfBody",
    "EndOfInput",
    "Framer",
    "LengthPrefix",
    "LineBuffer",
    "LineSplitter",
    "NeedData",
    "ProxyHeader",
    "ProxyHeaderError",
    "ProxyHeaderParser",
    "Terminator",
    "TerminatorLike",
    "as_terminator",
    "check_line_argument",
    "dot_stuff",
    "dot_unstuff",
    "encode_frame",
    "encode_v1",
    "encode_v2",
    "ensure_final_newline",
]
