"""Which forward proxy a request goes through: explicit settings and the environment.

Plain code, no I/O: the client asks :func:`choose_proxy` for each request.  The
environment is read the way curl, requests and urllib read it:

* ``http_proxy`` / ``HTTP_PROXY`` for http:// URLs, ``https_proxy`` / ``HTTPS_PROXY``
  for https:// URLs, ``all_proxy`` / ``ALL_PROXY`` for either when those are unset;
  the lowercase name wins (as in urllib and curl);
* ``HTTP_PROXY`` in upper case is ignored when ``REQUEST_METHOD`` is set: in a CGI
  script it is the request's ``Proxy:`` header, chosen by the client (httpoxy);
* ``no_proxy`` / ``NO_PROXY``: hosts reached directly, comma-separated: ``*`` for
  all, a name (which also covers its subdomains; a leading dot is ignored), an IP
  address, a CIDR network (``10.0.0.0/8``), each optionally with ``:port``.  Like
  curl and requests, loopback is *not* implied: a local server is reached through
  the proxy unless ``NO_PROXY`` names it.

A proxy value without a scheme is an http:// proxy; without a port, port 1080 (curl's
defaults).  Accepted schemes: http, https (TLS to the proxy), socks4, socks4a,
socks5 and socks5h (the last of each pair lets the proxy resolve the name).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from yarl import URL

from ._errors import WebConfigurationError

__all__ = [
    "DEFAULT_PROXY_PORT",
    "PROXY_SCHEMES",
    "SOCKS_SCHEMES",
    "ProxyChoice",
    "bypasses",
    "check_proxy_url",
    "choose_proxy",
    "parse_no_proxy",
    "proxy_from_environment",
]

DEFAULT_PROXY_PORT = 1080
SOCKS_SCHEMES = frozenset({"socks4", "socks4a", "socks5", "socks5h"})
PROXY_SCHEMES = frozenset({"http", "https"}) | SOCKS_SCHEMES
_BAD_TEXT = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class ProxyChoice:
    """The proxy for one request and where it came from (``source``: the environment
    variable's name, or ``None`` when the program set it)."""

    url: URL
    source: str | None = None

    @property
    def socks(self) -> bool:
        """True for a SOCKS proxy (which needs the ``socks`` extra)."""
        return self.url.scheme in SOCKS_SCHEMES

    @property
    def address(self) -> tuple[str | None, int | None]:
        """``(host, port)`` of the proxy."""
        return self.url.host, self.url.port

    @property
    def shown(self) -> str:
        """The proxy URL without its credentials, for messages."""
        return str(self.url.with_user(None).with_path("").with_query(None))

    @property
    def setting(self) -> str:
        """What to change when this proxy fails: the variable, or ``proxy``."""
        return self.source or "proxy"


def check_proxy_url(text: str | URL, setting: str = "proxy") -> URL:
    """Parse a proxy URL (``http://`` assumed, port 1080 by default); a value that cannot
    be one is a :class:`WebConfigurationError` naming ``setting``."""
    value = str(text).strip()
    if _BAD_TEXT.search(value):
        raise WebConfigurationError(f"{setting}: control character or space in {value!r}")
    if "://" not in value:
        value = "http://" + value
    try:
        url = URL(value)
        port = url.explicit_port
    except ValueError as exc:
        raise WebConfigurationError(f"{setting}: {value!r} is not a proxy URL ({exc})") from None
    scheme = url.scheme.lower()
    if scheme not in PROXY_SCHEMES:
        raise WebConfigurationError(
            f"{setting}: {scheme}:// proxies are not supported; use http://, https://, "
            "socks4://, socks4a://, socks5:// or socks5h://"
        )
    if not url.host:
        raise WebConfigurationError(f"{setting}: {value!r} names no proxy host")
    if port is None:
        url = url.with_port(DEFAULT_PROXY_PORT)
    return url.with_scheme(scheme)


def parse_no_proxy(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """The entries of a ``NO_PROXY`` value (comma or space separated), lower-cased."""
    if value is None:
        return ()
    parts = [value] if isinstance(value, str) else list(value)
    return tuple(
        entry.lower() for part in parts for entry in re.split(r"[,\s]+", part) if entry.strip()
    )


def _split_entry(entry: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port``, ``v6`` or ``net/len`` into host and port."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None


def bypasses(host: str | None, port: int | None, entries: Iterable[str]) -> bool:
    """True when ``NO_PROXY`` ``entries`` say ``host`` (and ``port``) is reached directly."""
    if not host:
        return False
    name = host.lower().strip("[]").rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    for entry in entries:
        if entry == "*":
            return True
        wanted, wanted_port = _split_entry(entry)
        if wanted_port is not None and wanted_port != port:
            continue
        try:
            network = ipaddress.ip_network(wanted, strict=False)
        except ValueError:
            network = None
        if network is not None:
            if address is not None and address in network:
                return True
            continue
        wanted = wanted.lstrip(".").rstrip(".")
        if wanted and (name == wanted or name.endswith("." + wanted)):
            return True
    return False


def proxy_from_environment(scheme: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """``(variable, value)`` of the proxy the environment names for ``scheme``, if any."""
    names = [f"{scheme}_proxy"]
    # In a CGI script HTTP_PROXY is the client's "Proxy:" request header (httpoxy).
    if scheme != "http" or "REQUEST_METHOD" not in environ:
        names.append(f"{scheme.upper()}_PROXY")
    names += ["all_proxy", "ALL_PROXY"]
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return None


def no_proxy_from_environment(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The ``no_proxy`` (else ``NO_PROXY``) entries of the environment."""
    for name in ("no_proxy", "NO_PROXY"):
        if name in environ:
            return parse_no_proxy(environ[name])
    return ()


def choose_proxy(
    url: URL,
    *,
    proxy: URL | None,
    trust_env: bool,
    no_proxy: tuple[str, ...] | None,
    environ: Mapping[str, str],
) -> ProxyChoice | None:
    """The proxy for ``url``: none when ``no_proxy`` (else, with ``trust_env``, the
    environment's ``NO_PROXY``) covers its host, else ``proxy``, else (with
    ``trust_env``) the environment's proxy for its scheme."""
    if no_proxy is None:
        no_proxy = no_proxy_from_environment(environ) if trust_env else ()
    if bypasses(url.host, url.port, no_proxy):
        return None
    if proxy is not None:
        return ProxyChoice(proxy)
    if not trust_env:
        return None
    found = proxy_from_environment(url.scheme, environ)
    if found is None:
        return None
    name, value = found
    return ProxyChoice(check_proxy_url(value, name), name)
