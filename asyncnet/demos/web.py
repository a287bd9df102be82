"""SimpleHTTPServer and CGIHTTPServer ("a web server in three lines"), on asyncio.

    python -m asyncnet.demos.web                # serve this directory on 127.0.0.1:8000
    python -m asyncnet.demos.web DIR --cgi      # ... DIR, running DIR/cgi-bin/ scripts
    python -m asyncnet.demos.web --sample       # the tutorial's form and sample CGI script
    python -m asyncnet.demos.web --sample --debug   # ... with cgitb-style pages on loopback

Listings escape every name, paths cannot leave DIR (encoded, doubled, backslash,
NUL, symlinks), dotfiles stay hidden, and /form is the tutorial's review form
handled in the server.  ``--debug`` adds /debug/crash and shows tracebacks, only
to loopback clients asking for a loopback name (``--debug-host NAME`` trusts one
more, e.g. a local proxy's); it refuses --all-interfaces.  ``--port 0`` picks a
free port.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from . import _cli as cli

SAMPLE = Path(__file__).with_name("site")


def sample_site(into: Path) -> Path:
    """Copy the sample site to ``into`` with its CGI scripts executable; return its root."""
    root = into / "site"
    shutil.copytree(SAMPLE, root)
    for script in (root / "cgi-bin").iterdir():
        script.chmod(0o755)  # an installed package need not keep the mode bits
    return root


def main(argv: list[str] | None = None) -> int:
    """Serve a directory until Ctrl-C."""
    parser = cli.parser("python -m asyncnet.demos.web", __doc__)
    parser.add_argument("directory", nargs="?", help="what to serve (default .)")
    cli.add_server_arguments(parser, port=8000)
    # http.server's spellings, for fingers that know them
    parser.add_argument("-b", "--bind", dest="host", default=argparse.SUPPRESS, help="= --host")
    parser.add_argument("-d", "--directory", dest="directory_option", metavar="DIR", help="= DIR")
    parser.add_argument("--cgi", action="store_true", help="run scripts in DIR/cgi-bin/")
    parser.add_argument("--sample", action="store_true", help="serve the bundled sample site")
    parser.add_argument("--debug", action="store_true", help="tracebacks for loopback clients")
    parser.add_argument(
        "--debug-host",
        action="append",
        default=[],
        metavar="NAME",
        help="with --debug: also show tracebacks to requests for this Host name (repeatable)",
    )
    parser.add_argument("--uploads", metavar="DIR", help="accept /form file uploads into DIR")
    parser.add_argument("--show-hidden", action="store_true", help="serve dotfiles too")
    return cli.main(parser, serve, argv)


def serve(args: argparse.Namespace) -> int:
    """The body of main(): check the directories, then serve (a second Ctrl-C: at once)."""
    # aiohttp loads here, not at the top: --help and a usage error answer without it.
    from ..web import WebServer, site_app

    if args.debug_host and not args.debug:
        raise cli.UsageError("--debug-host only matters with --debug")
    with contextlib.ExitStack() as stack:
        root = Path(args.directory or args.directory_option or ".")
        options: dict[str, Any] = {"cgi": args.cgi, "show_hidden": args.show_hidden}
        if args.sample:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="asyncnet-")))
            root = sample_site(scratch)
            options.update(cgi=True, upload_dir=args.uploads or scratch)
        elif args.uploads:
            options["upload_dir"] = args.uploads
        for flag, path in (("DIR", root), ("--uploads", options.get("upload_dir"))):
            if path is not None and not Path(path).is_dir():
                raise ConfigurationError(f"no directory {str(path)!r} (check {flag})")
        server = WebServer(
            site_app(root, debug=args.debug, debug_hosts=args.debug_host, **options),
            debug=args.debug,
            access_log=args.verbose >= 1,  # -v: a line per request
            **cli.server_options(args),
        )
        cli.include_logger("aiohttp.access")

        def ready(servers: Sequence[Any]) -> None:
            print(f"web: serving {root} on {servers[0].url} (Ctrl-C to stop)", flush=True)

        return cli.serve(server, name="web", ready=ready)


if __name__ == "__main__":
    raise SystemExit(main())
