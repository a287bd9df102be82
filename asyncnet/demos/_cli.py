"""Command-line plumbing shared by the demos, so each demo reads like its slide.

Every demo follows one convention: ``--help`` exits 0; a bad flag or value is one
line on stderr and exit status 2; an expected failure (port in use, refused, bad
host, missing file, timeout) is one line saying what to do and exit status 1, with
the traceback only at ``-vv``.  A demo builds its parser with :func:`parser`,
validates values with the ``type=`` helpers below, and hands its body to
:func:`main`, which owns the error printing.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import math
import os
import select
import socket
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import format_peer
from ..text import line_bytes, not_text
from ._explain import _leaf, explain

if TYPE_CHECKING:
    import ssl

    from .. import Servable
    from ..servers import ServerBase

# Every demo imports this module before it parses its arguments, so it imports
# nothing heavy at the top: asyncio (through the runner), the servers and the TLS
# helpers load inside the functions that use them, and ``--help`` answers without
# them.

__all__ = [
    "UsageError",
    "add_server_arguments",
    "add_verbose_argument",
    "announce",
    "describe",
    "existing_file",
    "explain",
    "include_logger",
    "log_connections",
    "main",
    "non_negative_int",
    "parse",
    "parser",
    "port_number",
    "positive_float",
    "positive_int",
    "serve",
    "server_options",
    "utf8_text",
]

logger = logging.getLogger("asyncnet.demos")

DEFAULT_HOST = "127.0.0.1"


class UsageError(Exception):
    """A combination of arguments the demo refuses (exit status 2, like argparse)."""


class DemoParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that points at ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parser(prog: str, doc: str | None) -> DemoParser:
    """The demo's argument parser: its docstring as the help text, ``-v`` included."""
    made = DemoParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_verbose_argument(made)
    return made


# -- values, checked before anything touches the network ----------------------


def port_number(text: str) -> int:
    """An argparse ``type=``: a port in 0..65535 (0 = any free port)."""
    try:
        port = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range: use 0-65535 (0 = any free)")
    return port


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {minimum} or more, not {value}")
    return value


def _seconds(text: str, *, zero_allowed: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_allowed):
        least = "0 seconds or more" if zero_allowed else "more than 0 seconds"
        raise argparse.ArgumentTypeError(f"must be {least}, not {text}")
    return value


def positive_int(text: str) -> int:
    """An argparse ``type=``: an integer >= 1."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse ``type=``: an integer >= 0."""
    return _whole_number(text, 0)


def positive_float(text: str) -> float:
    """An argparse ``type=``: a finite number of seconds > 0."""
    return _seconds(text, zero_allowed=False)


def non_negative_float(text: str) -> float:
    """An argparse ``type=``: a finite number of seconds >= 0."""
    return _seconds(text, zero_allowed=True)


def existing_file(text: str) -> str:
    """An argparse ``type=``: the path of a file that exists and can be read."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: not a regular file")
    return text


def utf8_text(text: str) -> str:
    """An argparse ``type=``: an argument that can be sent as UTF-8 text.

    The OS hands argv over as bytes; those that are not UTF-8 arrive as lone
    surrogates, which no UTF-8 line protocol can carry.
    """
    if not_text(text):
        raise argparse.ArgumentTypeError(f"{line_bytes(text)!r} is not UTF-8 text")
    return text


# -- the common options ----------------------------------------------------------


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """``--cafile``, ``--cert`` and ``--key``: the trust and identity of a TLS client."""
    group = parser.add_argument_group("TLS")
    group.add_argument(
        "--cafile",
        metavar="FILE",
        help="also trust the CA certificates in FILE (PEM), besides the system's",
    )
    group.add_argument(
        "--cert", metavar="FILE", help="present this client certificate (PEM; may hold the key)"
    )
    group.add_argument("--key", metavar="FILE", help="the client certificate's private key (PEM)")


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The context ``--cafile/--cert/--key`` ask for; ``None`` when none was given (the
    client's default: the system's trust store).  A bad file is a ConfigurationError
    naming the option, which :func:`main` prints as one line."""
    cafile = getattr(args, "cafile", None)
    cert = getattr(args, "cert", None)
    key = getattr(args, "key", None)
    if cafile is None and cert is None and key is None:
        return None
    from .._tls import client_context

    return client_context(cafile=cafile, certfile=cert, keyfile=key)


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    """``-v`` (connections) and ``-vv`` (debug details, tracebacks) to stderr."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log connections (-v); debug details and tracebacks (-vv); to stderr",
    )


def add_server_arguments(parser: argparse.ArgumentParser, *, port: int) -> None:
    """--host, --port and --all-interfaces, with loopback defaults (and -v if missing)."""
    with contextlib.suppress(argparse.ArgumentError):  # the parser has its own -v
        add_verbose_argument(parser)
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to serve on or connect to (default 127.0.0.1; ::1 for IPv6)",
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=port,
        help=f"port (default {port}; 0 = any free port, printed at start)",
    )
    parser.add_argument(
        "--all-interfaces",
        action="store_true",
        help="listen on every interface instead of --host (explicit opt-in)",
    )


def server_options(args: argparse.Namespace) -> dict[str, Any]:
    """Server keyword arguments from --host/--port/--all-interfaces.

    A wildcard ``--host`` (0.0.0.0, ::) is refused here, in the flags' own words:
    the library's refusal names its keyword argument, which a CLI user never typed.
    """
    if args.all_interfaces:
        if args.host != DEFAULT_HOST:
            raise UsageError("--all-interfaces listens on every address; do not also pass --host")
        return {"host": None, "all_interfaces": True, "port": args.port}
    if _is_wildcard(args.host):
        raise UsageError(
            f"--host {args.host or repr('')} would listen on every interface; "
            "use --all-interfaces if that is what you want"
        )
    return {"host": args.host, "port": args.port}


def _is_wildcard(host: str) -> bool:
    """True for a host that means "every interface" (``""``, ``0.0.0.0``, ``::``...)."""
    if not host.strip() or host.strip() == "*":
        return True
    try:
        return ipaddress.ip_address(host.strip()).is_unspecified
    except ValueError:
        pass
    try:  # the resolver also takes inet_aton's short forms: "0" is 0.0.0.0
        return socket.inet_aton(host.strip()) == bytes(4)
    except OSError:
        return False  # a name: resolved (and checked) by the server


# -- running ---------------------------------------------------------------------


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse arguments and set up logging from -v (for demos that do not use :func:`main`)."""
    args = parser.parse_args(argv)
    from .._runner import configure_logging

    configure_logging(getattr(args, "verbose", 0))
    return args


def main(
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None = None,
    *,
    address_flag: str | None = None,
) -> int:
    """Parse ``argv``, set up logging from ``-v``, run ``body``; one line per expected failure.

    Returns the exit status: ``body``'s, 1 for an expected failure, 2 for a usage
    error, 130 for Ctrl-C, and 1 without a word when stdout's reader went away
    (``| head``).  Unexpected exceptions (bugs) still raise.  A demo whose
    peer is not ``--host``/``--port`` names its own flag (``URL``, ``--server``) as
    ``address_flag``, so that the advice names what the user typed.
    """
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", 0)
    from .._runner import configure_logging

    configure_logging(verbose)
    try:
        status = body(args)
        if sys.stdout is not None:
            # Python flushes at exit too, but then a reader that went away is only
            # "Exception ignored ... BrokenPipeError" and exit status 120.
            sys.stdout.flush()
        return status
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc} (see --help)", file=sys.stderr, flush=True)
        return 2
    except Exception as exc:
        if _stdout_went_away(exc):
            return _quiet_exit()
        message = explain(exc, host=getattr(args, "host", None))
        if message is None:
            raise
        if verbose >= 2:
            traceback.print_exception(exc)
        # A peer's words can be in the message: escaped, they stay one line and
        # cannot drive the terminal.
        message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
        if address_flag is not None:
            message = message.replace("--host and --port", address_flag)
            message = message.replace("--host", address_flag)
        print(f"{parser.prog}: error: {message}", file=sys.stderr, flush=True)
        return 1


def _stdout_went_away(exc: BaseException) -> bool:
    """True when ``exc`` is EPIPE because whoever read stdout closed it (``| head``).

    A broken pipe from a peer (a socket) is a real error and stays one: stdout
    itself is asked whether its reader is gone (poll reports POLLERR, or POLLHUP, on
    a pipe without a reader).  Where there is no poll (Windows) it is never assumed.
    """
    if not isinstance(_leaf(exc), BrokenPipeError) or sys.stdout is None:
        return False
    poll = getattr(select, "poll", None)
    if poll is None:
        return False
    try:
        poller = poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        events = poller.poll(0)
    except (OSError, ValueError):  # no descriptor (a StringIO), or a closed one
        return False
    return any(mask & (select.POLLERR | select.POLLHUP) for _, mask in events)


def _quiet_exit() -> int:
    """Python's recipe for a closed stdout (see the SIGPIPE note in the ``signal`` docs).

    Whatever is still buffered for stdout would fail again when Python flushes it
    at exit, so stdout now points at the null device.  Exit status 1, no message:
    the reader had all it wanted.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
    return 1


def serve(
    *servers: Servable, name: str, ready: Callable[[Sequence[Any]], object] | None = None
) -> int:
    """``run_servers`` with the ready line.

    The first SIGINT/SIGTERM starts the graceful shutdown (each server's ``grace``);
    a second Ctrl-C during it stops at once and the demo exits with status 130
    (:func:`asyncnet._runner.catch_signals`).  ``ready`` replaces the standard ready
    line (:func:`announce`) for a demo that says more.
    """
    from .._runner import run_servers

    shown: Callable[[Sequence[Any]], object] = announce(name) if ready is None else ready
    return run_servers(*servers, ready=shown)


# -- what the demos print and log --------------------------------------------------


def log_connections(factory: Callable[[], Any]) -> Callable[[], Any]:
    """Wrap a stream handler factory so ``-v`` logs each connection's open and close.

    The servers log what goes wrong with a connection, not that one opened: the
    demos add that here, through the handlers' own ``setup()``/``finish()`` hooks.
    """

    if not logger.isEnabledFor(logging.INFO):
        return factory  # no cost per connection unless -v asked for the lines

    def make() -> Any:
        handler = factory()
        setup, finish = handler.setup, handler.finish

        def logged_setup() -> None:
            logger.info("connection from %s", format_peer(handler.peer))
            setup()

        def logged_finish() -> None:
            try:
                finish()
            finally:
                logger.info("connection from %s closed", format_peer(handler.peer))

        handler.setup, handler.finish = logged_setup, logged_finish
        return handler

    # The server is named after its handler ("Upper listening on ..."), so keep the name.
    make.__name__ = make.__qualname__ = getattr(factory, "__name__", make.__name__)
    return make


def include_logger(name: str) -> None:
    """Send a library's own logger (aiosmtpd's, aiohttp's) where ``-v``/``-vv`` send ours."""
    ours, theirs = logging.getLogger("asyncnet"), logging.getLogger(name)
    theirs.handlers[:] = ours.handlers
    theirs.setLevel(ours.level)
    theirs.propagate = False


def describe(server: ServerBase) -> str:
    """``tcp://127.0.0.1:9999`` style text for a running server."""
    from ..servers import DatagramServer

    scheme = "udp" if isinstance(server, DatagramServer) else "tcp"
    return ", ".join(f"{scheme}://{format_peer(a)}" for a in server.addresses)


def announce(name: str) -> Callable[[Sequence[ServerBase]], None]:
    """A ``ready`` callback printing the one line that says where the demo listens."""

    def ready(servers: Sequence[ServerBase]) -> None:
        where = " and ".join(describe(s) for s in servers)
        print(f"{name}: listening on {where} (Ctrl-C to stop)", flush=True)

    return ready
