"""The sans-IO POP3 client protocol and reply parsers, byte by byte, without sockets."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncnet.errors import LocalProtocolError
from asyncnet.mail import POP3ProtocolError
from asyncnet.mail._pop3.protocol import (
    NEED_DATA,
    BodyChunk,
    BodyEnd,
    Closed,
    POP3Protocol,
    Status,
    apop_timestamp,
    encode_command,
    parse_capa,
    parse_listing,
    parse_stat,
    parse_status,
    parse_uidl,
)
from asyncnet.protocols import dot_stuff, ensure_final_newline

GREETING = b"+OK ready <1896.697170952@dbc.mtview.ca.us>\r\n"


def run(chunks: list[bytes], commands: list[tuple[tuple[str, ...], dict[str, bool]]], **limits):
    """Feed ``chunks`` after sending ``commands``; collapse events to (status, body) pairs."""
    proto = POP3Protocol(**limits)
    for args, options in commands:
        proto.send_command(*args, **options)
    replies: list[tuple[Status, bytes | None]] = []
    current: list[object] = []  # [status, body parts] while a body is open

    def drain() -> None:
        while (event := proto.next_event()) is not NEED_DATA:
            if isinstance(event, Status):
                n = len(replies)  # 0 is the greeting, n answers commands[n - 1]
                if event.ok and n > 0 and commands[n - 1][1].get("multiline"):
                    current[:] = [event, []]
                else:
                    replies.append((event, None))
            elif isinstance(event, BodyChunk):
                current[1].append(event.data)  # type: ignore[attr-defined]
            else:
                assert isinstance(event, BodyEnd)
                replies.append((current[0], b"".join(current[1])))  # type: ignore[arg-type]
                current.clear()

    for chunk in chunks:
        proto.receive_data(chunk)
        drain()
    return replies


SESSION = [
    (("USER", "alice"), {}),
    (("PASS", "secret"), {}),
    (("LIST",), {"multiline": True}),
    (("RETR", "1"), {"multiline": True, "message": True}),
    (("DELE", "9"), {}),
]
BODY = b"Subject: x\r\n\r\n.leading dot\r\n..two\r\n.\r\nend"
WIRE = (
    GREETING
    + b"+OK\r\n+OK logged in\r\n+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n"
    + b"+OK 60 octets\r\n"
    + dot_stuff(BODY)
    + b"-ERR no such message\r\n"
)
EXPECTED = [
    (Status(True, "ready <1896.697170952@dbc.mtview.ca.us>"), None),
    (Status(True, ""), None),
    (Status(True, "logged in"), None),
    (Status(True, "2 messages"), b"1 120\r\n2 200\r\n"),
    (Status(True, "60 octets"), ensure_final_newline(BODY)),
    (Status(False, "no such message"), None),
]


def test_session_whole() -> None:
    """A pipelined session fed at once gives each reply in order."""
    assert run([WIRE], SESSION) == EXPECTED


def test_session_byte_by_byte() -> None:
    """The same session one byte at a time gives the same replies."""
    assert run([WIRE[i : i + 1] for i in range(len(WIRE))], SESSION) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(WIRE)), max_size=12))
def test_session_any_split(cuts: list[int]) -> None:
    """Any split of the input gives the same replies (P1: dot-stuffed bodies included)."""
    points = sorted(set(cuts))
    chunks = [WIRE[a:b] for a, b in zip([0, *points], [*points, len(WIRE)], strict=True)]
    assert run(chunks, SESSION) == EXPECTED


@given(st.lists(st.sampled_from([b".", b"..", b"...", b"a", b".a", b" ", b"\xff"]), max_size=8))
def test_dot_bodies_roundtrip(lines: list[bytes]) -> None:
    """P1: lines of dots survive stuffing and the protocol's unstuffing byte-exact."""
    body = b"\r\n".join(lines) + b"\r\n" if lines else b""
    wire = GREETING + b"+OK\r\n" + dot_stuff(body)
    replies = run([wire], [(("RETR", "1"), {"multiline": True, "message": True})])
    assert replies[1] == (Status(True, ""), body)


@pytest.mark.parametrize(
    "line",
    [b"OK fine", b"+ok", b"+OKAY", b"", b"-ERROR", b"* OK imap", b"\x00+OK"],
)
def test_malformed_status(line: bytes) -> None:
    """P6: a status line without +OK / -ERR is a protocol error."""
    with pytest.raises(POP3ProtocolError):
        parse_status(line)
    proto = POP3Protocol()
    proto.receive_data(line + b"\r\n")
    with pytest.raises(POP3ProtocolError):
        proto.next_event()


def test_status_text() -> None:
    """+OK and -ERR with and without text."""
    assert parse_status(b"+OK") == Status(True, "")
    assert parse_status(b"-ERR [IN-USE] locked") == Status(False, "[IN-USE] locked")


@pytest.mark.parametrize(
    "body",
    [
        b"1 aaa\r\n1 bbb\r\n",  # duplicate message number
        b"1 same\r\n2 same\r\n",  # duplicate unique-id
        b"1 has space\r\n",  # a UID with a space
        b"1 " + b"x" * 71 + b"\r\n",  # over 70 characters
        b"1 caf\xc3\xa9\r\n",  # outside 0x21-0x7E
        b"x abc\r\n",  # not a number
        b"1\r\n",  # no uid
    ],
)
def test_malformed_uidl(body: bytes) -> None:
    """P6: duplicate UIDs or numbers, a UID with a space or >70 characters: typed errors."""
    with pytest.raises(POP3ProtocolError):
        parse_uidl(body)


def test_uidl_and_listing() -> None:
    """Valid UIDL and LIST bodies."""
    assert parse_uidl(b"1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n") == {
        1: "whqtswO00WBw418f9t5JxYwZ",
        2: "QhdPYR:00WBw1Ph7x7",
    }
    assert parse_listing(b"1 120\r\n2 200\r\n") == {1: 120, 2: 200}
    assert parse_stat("2 320") == (2, 320)
    with pytest.raises(POP3ProtocolError):
        parse_stat("two")
    with pytest.raises(POP3ProtocolError):
        parse_listing(b"1 120\r\n1 130\r\n")


def test_linear_time_parsing() -> None:
    """P6: 1 MB of hostile input parses (or fails) in well under a second each."""
    hostile_banner = "+OK " + "<" * 1_000_000
    listing = b"".join(b"%d %d\r\n" % (i, i) for i in range(1, 80_000))
    uidl = b"".join(b"%d u%d\r\n" % (i, i) for i in range(1, 80_000))
    for job in (
        lambda: apop_timestamp(hostile_banner),
        lambda: parse_listing(listing),
        lambda: parse_uidl(uidl),
    ):
        start = time.process_time()
        job()
        # generous: the point is linear vs quadratic (quadratic would take minutes)
        assert time.process_time() - start < 2.0


def test_apop_timestamp() -> None:
    """The greeting's <...@...> timestamp, or None."""
    assert apop_timestamp("POP3 <1896.697170952@dbc.mtview.ca.us>") == (
        "<1896.697170952@dbc.mtview.ca.us>"
    )
    assert apop_timestamp("ready <<<<x@y>") == "<x@y>"
    assert apop_timestamp("ready <no-at-sign>") is None


def test_capa() -> None:
    """CAPA names upper-cased, with their arguments."""
    assert parse_capa(b"TOP\r\nsasl PLAIN LOGIN\r\nSTLS\r\n") == {
        "TOP": [],
        "SASL": ["PLAIN", "LOGIN"],
        "STLS": [],
    }


@pytest.mark.parametrize("arg", ["a\r\nDELE 1", "a\nb", "a\x00b", "a b", ""])
def test_command_injection_refused(arg: str) -> None:
    """P5: CR/LF/NUL (or a space) in an argument raise ValueError before encoding."""
    proto = POP3Protocol()
    with pytest.raises(ValueError) as info:
        proto.send_command("USER", arg)
    assert isinstance(info.value, LocalProtocolError)
    assert proto.expecting == 1  # only the greeting: nothing was queued


def test_command_too_long() -> None:
    """RFC 2449's 255-octet command line limit is enforced before sending."""
    with pytest.raises(LocalProtocolError):
        encode_command("PASS", "x" * 300)
    assert encode_command("user", "alice") == b"USER alice\r\n"


def test_long_line_is_protocol_error() -> None:
    """P4: a 100 KB status line is a protocol error, raised while it arrives."""
    proto = POP3Protocol(max_line_length=1024)
    with pytest.raises(POP3ProtocolError):
        proto.receive_data(b"+OK " + b"x" * 100_000)
        proto.next_event()


def test_body_over_announced_size() -> None:
    """P4: '+OK 10 octets' then megabytes: refused long before the end."""
    proto = POP3Protocol()
    proto.send_command("RETR", "1", multiline=True, message=True)
    proto.receive_data(GREETING + b"+OK 10 octets\r\n")
    assert proto.next_event() == Status(True, "ready <1896.697170952@dbc.mtview.ca.us>")
    assert proto.next_event() == Status(True, "10 octets")
    line = b"y" * 1000 + b"\r\n"
    fed = 0
    with pytest.raises(POP3ProtocolError, match="larger than allowed"):
        for _ in range(50_000):
            proto.receive_data(line)
            fed += len(line)
            while proto.next_event() is not NEED_DATA:
                pass
    assert fed < 200_000


def test_message_size_limit() -> None:
    """P4: max_message_size bounds a message whose +OK announces nothing."""
    proto = POP3Protocol(max_message_size=5000)
    proto.send_command("RETR", "1", multiline=True, message=True)
    proto.receive_data(GREETING + b"+OK\r\n")
    proto.next_event()
    proto.next_event()
    with pytest.raises(POP3ProtocolError):
        for _ in range(100):
            proto.receive_data(b"z" * 998 + b"\r\n")
            while proto.next_event() is not NEED_DATA:
                pass


def test_eof_mid_body_and_mid_status() -> None:
    """P2: the connection ending before the terminator is a Closed event naming the
    reply it cut (the client raises POP3ConnectionError from it); it stays Closed."""
    proto = POP3Protocol()
    proto.send_command("RETR", "1", multiline=True, message=True)
    proto.receive_data(GREETING + b"+OK\r\nSubject: half\r\n")
    proto.next_event()
    proto.next_event()
    assert proto.next_event() == BodyChunk(b"Subject: half\r\n")
    proto.receive_eof()
    closed = Closed("RETR", "connection closed in the middle of the RETR reply")
    assert proto.next_event() == closed
    assert proto.next_event() == closed
    proto = POP3Protocol()
    proto.receive_data(b"+OK half a gree")
    proto.receive_eof()
    assert proto.next_event() == Closed("reply", "connection closed in the middle of a status line")
    proto = POP3Protocol()
    proto.send_command("STAT")
    proto.receive_data(GREETING)
    assert isinstance(proto.next_event(), Status)
    proto.receive_eof()
    assert proto.next_event() == Closed(
        "STAT", "connection closed while waiting for the STAT reply"
    )


def test_end_of_input_anywhere_is_an_event_never_an_exception() -> None:
    """The parser raises protocol errors only: a valid session cut at any byte ends
    in a Closed event, whatever was cut."""
    wire = GREETING + b"+OK 2 32\r\n+OK 18 octets\r\nSubject: x\r\n\r\n..dot\r\n.\r\n"
    for cut in range(len(wire) + 1):
        proto = POP3Protocol()
        proto.send_command("STAT")
        proto.send_command("RETR", "1", multiline=True, message=True)
        proto.receive_data(wire[:cut])
        proto.receive_eof()
        events = []
        while not isinstance(event := proto.next_event(), Closed):
            assert event is not NEED_DATA, cut  # after the end of input, never "more"
            events.append(event)
            assert len(events) < 10, cut
        assert event.description.startswith("connection closed"), cut
        if cut == len(wire):
            assert events[-1] == BodyEnd()


def test_unsolicited_reply() -> None:
    """A reply nobody asked for is a protocol error, not the next command's answer."""
    proto = POP3Protocol()
    proto.receive_data(GREETING + b"+OK surprise\r\n")
    proto.next_event()
    with pytest.raises(POP3ProtocolError, match="unsolicited"):
        proto.next_event()
