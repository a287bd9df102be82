"""The demos' one-line error messages, from each kind of failure: never a traceback.

``explain()`` turns an expected failure into one line saying what to do; a bug
(any other exception) is not explained, so the demo re-raises it.
"""

from __future__ import annotations

import errno
import socket

import pytest

from asyncnet.demos._explain import explain
from asyncnet.errors import ConfigurationError, NetworkError, OperationTimeout


def chained(outer: BaseException, cause: BaseException) -> BaseException:
    """``outer`` as if raised ``from cause``."""
    outer.__cause__ = cause
    return outer


ASYNCIO_BIND = OSError(
    errno.EADDRINUSE,
    "error while attempting to bind on address ('127.0.0.1', 9999): address already in use",
)


def test_asyncio_bind_failure_names_the_address_and_the_flag() -> None:
    line = explain(ASYNCIO_BIND)
    assert line == (
        "cannot listen on 127.0.0.1:9999: the port is already in use; "
        "stop the other program or choose another --port (0 = any free port)"
    )


def test_translated_bind_failure_is_recognised_by_its_errno() -> None:
    """An asyncnet error raised from the OSError (AddressInUse, NetworkError) keeps its
    own one-line message and gets the hint; "in use" is not said twice."""
    exc = chained(
        NetworkError("Upper cannot listen on tcp 127.0.0.1:9999: the address is already in use"),
        ASYNCIO_BIND,
    )
    line = explain(exc)
    assert line is not None
    assert line.startswith("Upper cannot listen on tcp 127.0.0.1:9999")
    assert line.count("in use") == 1
    assert line.endswith("choose another --port (0 = any free port)")


def test_errno_without_a_message_pattern() -> None:
    line = explain(OSError(errno.EADDRINUSE, "Address already in use"))
    assert line == (
        "Address already in use; "
        "stop the other program or choose another --port (0 = any free port)"
    )


def test_single_exception_groups_are_unwrapped() -> None:
    group = ExceptionGroup("unhandled errors in a TaskGroup", [ASYNCIO_BIND])
    assert explain(BaseExceptionGroup("outer", [group])) == explain(ASYNCIO_BIND)


def test_refused_says_to_check_the_server() -> None:
    exc = chained(
        NetworkError("connect with 127.0.0.1:1 failed: Connection refused"),
        ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"),
    )
    assert explain(exc) == (
        "connect with 127.0.0.1:1 failed: Connection refused: "
        "is the server running? check --host and --port"
    )


def test_unresolvable_host_names_the_host() -> None:
    exc = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert explain(exc, host="nosuch.invalid") == (
        "cannot resolve host 'nosuch.invalid' (Name or service not known); check --host"
    )


def test_timeout_suggests_a_longer_timeout() -> None:
    line = explain(OperationTimeout(("127.0.0.1", 9), "connect", 2))
    assert line == (
        "timed out after 2 s during connect with 127.0.0.1:9: "
        "is the peer running? try a longer --timeout"
    )


def test_missing_file_names_the_file() -> None:
    exc = FileNotFoundError(errno.ENOENT, "No such file or directory", "/nonexistent/x.log")
    assert explain(exc) == "/nonexistent/x.log: no such file or directory; check the path"


def test_configuration_error_uses_the_flag_name() -> None:
    """A user sees the flag to change, never the library's keyword argument."""
    exc = ConfigurationError("all_interfaces=True binds every interface; do not also pass host")
    assert explain(exc) == "--all-interfaces binds every interface; do not also pass host"


@pytest.mark.parametrize("exc", [ValueError("a bug"), KeyError("x"), RuntimeError("bug")])
def test_bugs_are_not_explained(exc: Exception) -> None:
    assert explain(exc) is None


def test_keyword_arguments_become_flags() -> None:
    """Library keywords in a message are shown as the CLI's flags."""
    exc = ConfigurationError(
        "192.0.2.255 is a broadcast address: pass broadcast=True to send to every machine"
    )
    assert (
        explain(exc)
        == "192.0.2.255 is a broadcast address: pass --broadcast to send to every machine"
    )
    assert (
        explain(ConfigurationError("bufsize must be in 19..65507"))
        == "--bufsize must be in 19..65507"
    )


def test_translated_resolver_error_keeps_its_message() -> None:
    exc = chained(
        NetworkError(
            "emitter cannot open a socket to nosuch.invalid:5555: Name or service not known"
        ),
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
    )
    assert explain(exc, host="nosuch.invalid") == (
        "emitter cannot open a socket to nosuch.invalid:5555: "
        "Name or service not known; check --host"
    )
