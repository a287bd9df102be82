"""The office's ``--config office.toml``: which SMTP, POP3, FTP and HTTP servers to use.

Read with the standard library's :mod:`tomllib` and checked whole before anything
connects: every wrong setting is one :class:`~asyncnet.errors.ConfigurationError`
that names the file, the table and the key (``office.toml [pop3] port: ...``).
Passwords never sit in the file: a table names the environment variable that holds
one (``password_env``), and a ``password`` key is refused.  Relative paths (TLS
files, uploads) are taken from the file's own directory, so a config works from
wherever the office is started.

Nothing heavy is imported here (no aiohttp, aioftp or mail package): the clients'
option names are spelled out, and a test checks that they match the clients'.
"""

from __future__ import annotations

import difflib
import math
import os
import posixpath
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast
from urllib.parse import urlsplit

from ..errors import ConfigurationError

if TYPE_CHECKING:
    import ssl

__all__ = [
    "FTP_TLS_MODES",
    "POP3_AUTH",
    "POP3_TLS_MODES",
    "SMTP_TLS_MODES",
    "FTPSettings",
    "HTTPSettings",
    "OfficeConfig",
    "POP3Settings",
    "SMTPSettings",
    "load_config",
]

SMTPTLS: TypeAlias = Literal["opportunistic", "starttls", "implicit", "none"]
POP3TLS: TypeAlias = Literal["stls", "opportunistic", "implicit", "none"]
FTPTLS: TypeAlias = Literal["none", "explicit", "implicit"]
POP3Auth: TypeAlias = Literal["user", "apop", "plain", "login", "cram-md5", "xoauth2"]

SMTP_TLS_MODES = ("opportunistic", "starttls", "implicit", "none")
"""``SMTPClient(tls=...)``; opportunistic (STARTTLS whenever offered) is its default."""
POP3_TLS_MODES = ("stls", "opportunistic", "implicit", "none")
"""``POP3Client(tls=...)``; its default is none on loopback, stls elsewhere."""
FTP_TLS_MODES = ("none", "explicit", "implicit")
"""``FTPClient(tls=...)``: plain FTP, AUTH TLS, or TLS from the first byte (port 990)."""
POP3_AUTH = ("user", "apop", "plain", "login", "cram-md5", "xoauth2")
"""``POP3Client.authenticate(method=...)``; left out: the best the server offers."""
FTP_MODES = ("passive", "active")
_PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")

_TLS_FILES = ("cafile", "cert", "key")
_COMMON = ("host", "port", "user", "password_env", "tls", *_TLS_FILES, "timeout")
_KEYS: dict[str, tuple[str, ...]] = {
    "smtp": (*_COMMON, "from", "to"),
    "pop3": (*_COMMON, "auth", "max_messages"),
    "ftp": (*_COMMON, "mode", "download", "upload", "upload_dir"),
    "http": ("url", "user", "password_env", *_TLS_FILES, "proxy", "max_pages", "timeout"),
}


@dataclass
class SMTPSettings:
    """Where the mail job sends: server, TLS, login and the envelope."""

    host: str
    port: int | None = None
    tls: SMTPTLS | None = None
    ssl: ssl.SSLContext | None = None
    user: str | None = None
    password: str | None = None
    sender: str = "office@localhost"
    recipients: list[str] = field(default_factory=lambda: ["demo@localhost"])
    timeout: float = 30.0
    where: str = "smtp"
    """What a failure is blamed on: ``office.toml [smtp]`` (``smtp`` when embedded)."""
    password_env: str | None = None


@dataclass
class POP3Settings:
    """Where the mail job reads: server, TLS, login method and how many messages."""

    host: str
    user: str
    secret: str
    port: int | None = None
    tls: POP3TLS | None = None
    ssl: ssl.SSLContext | None = None
    auth: POP3Auth | None = None
    max_messages: int = 100
    timeout: float = 30.0
    where: str = "pop3"
    """What a failure is blamed on: ``office.toml [pop3]`` (``pop3`` when embedded)."""
    password_env: str | None = None


@dataclass
class FTPSettings:
    """The FTP job's server, TLS, data-connection mode and what to move."""

    host: str
    port: int | None = None
    user: str = "anonymous"
    password: str = "anonymous@"
    tls: FTPTLS = "none"
    ssl: ssl.SSLContext | None = None
    passive: bool = True
    downloads: list[str] = field(default_factory=list)
    uploads: list[Path] = field(default_factory=list)
    upload_dir: str = ""
    timeout: float = 30.0
    where: str = "ftp"
    """What a failure is blamed on: ``office.toml [ftp]`` (``ftp`` when embedded)."""


@dataclass
class HTTPSettings:
    """The web job's start page, TLS trust, proxy and crawl bound."""

    url: str
    ssl: ssl.SSLContext | None = None
    proxy: str | None = None
    user: str | None = None
    password: str | None = None
    max_pages: int = 200
    timeout: float = 30.0
    where: str = "http"
    """What a failure is blamed on: ``office.toml [http]`` (``http`` when embedded)."""


@dataclass
class OfficeConfig:
    """The servers a config file names; a table left out is a job not run."""

    path: Path
    smtp: SMTPSettings | None = None
    pop3: POP3Settings | None = None
    ftp: FTPSettings | None = None
    http: HTTPSettings | None = None


def load_config(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> OfficeConfig:
    """Read and check ``path``; passwords from ``environ`` (``os.environ`` by default)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigurationError(f"--config {name}: no such file") from None
    except IsADirectoryError:
        raise ConfigurationError(f"--config {name}: a directory, not a file") from None
    except PermissionError:
        raise ConfigurationError(f"--config {name}: not readable (permission denied)") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{name}: not valid TOML (the file is not UTF-8)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{name}: not valid TOML ({exc})") from None
    reader = _Reader(Path(name), os.environ if environ is None else environ)
    config = OfficeConfig(Path(name))
    for key, value in data.items():
        if key not in _KEYS:
            raise reader.unknown_table(key, value)
        if not isinstance(value, dict):
            raise ConfigurationError(
                f"{name}: {key} must be a table ([{key}] with its settings under it), "
                f"not {_kind(value)}"
            )
    if not any(key in data for key in _KEYS):
        raise ConfigurationError(
            f"{name}: names no server; add at least one of the tables [smtp], [pop3], "
            "[ftp], [http] (see docs/demos/office.md)"
        )
    if "smtp" in data:
        config.smtp = reader.smtp(_Table(reader, "smtp", data["smtp"]))
    if "pop3" in data:
        config.pop3 = reader.pop3(_Table(reader, "pop3", data["pop3"]))
    if "ftp" in data:
        config.ftp = reader.ftp(_Table(reader, "ftp", data["ftp"]))
    if "http" in data:
        config.http = reader.http(_Table(reader, "http", data["http"]))
    return config


def _kind(value: object) -> str:
    """A TOML reader's word for a value's type."""
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    kinds.update({list: "an array", dict: "a table"})
    return kinds.get(type(value), type(value).__name__)


class _Table:
    """One table's values, taken key by key; what is never taken is an unknown key."""

    def __init__(self, reader: _Reader, name: str, values: dict[str, Any]) -> None:
        self.reader, self.name, self.values = reader, name, values
        for key in values:
            if key not in _KEYS[name]:
                raise self.unknown_key(key)

    @property
    def blame(self) -> str:
        """``office.toml [pop3]``: where a failure at run time points."""
        return f"{self.reader.path} [{self.name}]"

    def where(self, key: str) -> str:
        """``office.toml [pop3] port`` for the messages."""
        return f"{self.reader.path} [{self.name}] {key}"

    def error(self, key: str, problem: str) -> ConfigurationError:
        """One line naming the file, the table and the key."""
        return ConfigurationError(f"{self.where(key)}: {problem}")

    def unknown_key(self, key: str) -> ConfigurationError:
        if key == "password":
            return self.error(
                key,
                "passwords never go in the file; put it in an environment variable and "
                'name that here: password_env = "MY_' + self.name.upper() + '_PASSWORD"',
            )
        if self.name == "http" and key in ("host", "port", "tls"):
            return self.error(
                key, 'give the server as url = "https://host:port/" (its scheme is the TLS)'
            )
        close = difflib.get_close_matches(key, _KEYS[self.name], n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return self.error(
            key, f"unknown key{hint}; [{self.name}] takes {', '.join(_KEYS[self.name])}"
        )

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        """A non-empty string without control characters."""
        value = self.values.get(key)
        if value is None:
            if required:
                raise self.error(key, "missing; this table needs it")
            return default
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, not {_kind(value)}")
        if not value.strip():
            raise self.error(key, "must not be empty")
        if any(not c.isprintable() for c in value):
            raise self.error(key, "must not contain control characters (CR, LF, NUL...)")
        return value

    def need_text(self, key: str) -> str:
        """A string the table cannot do without."""
        value = self.text(key, required=True)
        assert value is not None
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
        """One of ``choices`` (any case)."""
        value = self.text(key)
        if value is None:
            return default
        if value.lower() not in choices:
            quoted = ", ".join(f'"{c}"' for c in choices)
            raise self.error(key, f'"{value}" is not one of {quoted}')
        return value.lower()

    def integer(self, key: str, low: int, high: int | None = None) -> int | None:
        """A whole number in ``low..high``."""
        value = self.values.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, not {_kind(value)}")
        if value < low or (high is not None and value > high):
            bounds = f"{low}-{high}" if high is not None else f"{low} or more"
            raise self.error(key, f"{value} is out of range ({bounds})")
        return value

    def seconds(self, key: str, default: float) -> float:
        """A positive, finite number of seconds."""
        value = self.values.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"must be a number of seconds, not {_kind(value)}")
        if not math.isfinite(value) or value <= 0:
            raise self.error(key, f"must be more than 0 seconds, not {value}")
        return float(value)

    def texts(self, key: str, *, required: bool = False) -> list[str]:
        """An array of non-empty strings (a single string is an array of one)."""
        value = self.values.get(key)
        if value is None:
            if required:
                raise self.error(key, "missing; this table needs it")
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self.error(key, f"must be an array of strings, not {_kind(value)}")
        if not value and required:
            raise self.error(key, "must name at least one")
        for item in value:
            if not isinstance(item, str):
                raise self.error(key, f"must be an array of strings, not one holding {_kind(item)}")
            if not item.strip() or any(not c.isprintable() for c in item):
                raise self.error(key, f"{item!r}: empty, or holds control characters")
        return list(value)

    def host(self) -> str:
        """The server's name or address (no scheme, no port)."""
        host = self.need_text("host")
        if "://" in host or "/" in host:
            raise self.error("host", f'"{host}" is a URL; give the name only, and the port as port')
        return host

    def port(self) -> int | None:
        return self.integer("port", 1, 65535)

    def password(self, *, who: str | None) -> str | None:
        """The password from the environment variable ``password_env`` names."""
        variable = self.text("password_env")
        if variable is None:
            if who is not None:
                raise self.error(
                    "password_env",
                    f"missing: {who} needs a password; name the environment variable that "
                    'holds it (password_env = "MY_' + self.name.upper() + '_PASSWORD")',
                )
            return None
        if who is None:
            raise self.error("password_env", 'given without user; add user = "..." too')
        value = self.reader.environ.get(variable)
        if value is None:
            raise self.error("password_env", f"the environment variable {variable} is not set")
        if not value:
            raise self.error("password_env", f"the environment variable {variable} is empty")
        return value

    def path(self, key: str, value: str) -> Path:
        """``value`` from the config file's directory, when relative."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.reader.path.parent / path

    def readable(self, key: str, value: str) -> Path:
        """A regular file that can be read, or one line naming the key."""
        path = self.path(key, value)
        if not path.exists():
            raise self.error(key, f"{path}: no such file")
        if not path.is_file():
            raise self.error(key, f"{path}: not a regular file")
        if not os.access(path, os.R_OK):
            raise self.error(key, f"{path}: not readable (permission denied)")
        return path

    def tls_context(self, *, tls_off: str | None) -> ssl.SSLContext | None:
        """A verifying context from cafile/cert/key; ``None`` when none is given.

        ``tls_off`` says why TLS is off (the files would go unused), or ``None``.
        """
        given = [key for key in _TLS_FILES if key in self.values]
        if not given:
            return None
        if tls_off is not None:
            raise self.error(given[0], f"{tls_off}, so no TLS file is used")
        cafile = self.text("cafile")
        cert, key = self.text("cert"), self.text("key")
        if key is not None and cert is None:
            raise self.error("key", "given without cert (the certificate it belongs to)")
        from .._tls import client_context

        ca_path = self.readable("cafile", cafile) if cafile is not None else None
        try:  # the CA alone first, so that a bad one is named as the CA
            context = client_context(cafile=ca_path)
        except ConfigurationError as exc:
            raise self.error("cafile", _reason(exc)) from None
        if cert is None:
            return context
        cert_path = self.readable("cert", cert)
        key_path = self.readable("key", key) if key is not None else None
        try:
            return client_context(cafile=ca_path, certfile=cert_path, keyfile=key_path)
        except ConfigurationError as exc:
            raise self.error("cert", _reason(exc)) from None


def _reason(exc: ConfigurationError) -> str:
    """The TLS helper's words without its ``--cafile FILE`` prefix (the key says it)."""
    text = str(exc)
    return text.split(": ", 1)[1] if ": " in text else text


class _Reader:
    """What each table means."""

    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path, self.environ = path, environ

    def unknown_table(self, key: str, value: object) -> ConfigurationError:
        if not isinstance(value, dict):
            return ConfigurationError(
                f"{self.path}: {key} = ... outside any table; settings go under [smtp], "
                "[pop3], [ftp] or [http]"
            )
        close = difflib.get_close_matches(key, _KEYS, n=1)
        hint = f" (did you mean [{close[0]}]?)" if close else ""
        return ConfigurationError(
            f"{self.path} [{key}]: unknown table{hint}; the office knows [smtp], [pop3], "
            "[ftp] and [http]"
        )

    def smtp(self, table: _Table) -> SMTPSettings:
        tls = cast(SMTPTLS | None, table.choice("tls", SMTP_TLS_MODES))
        user = table.text("user")
        return SMTPSettings(
            host=table.host(),
            port=table.port(),
            tls=tls,
            ssl=table.tls_context(tls_off='tls is "none"' if tls == "none" else None),
            user=user,
            password=table.password(who=f'user "{user}"' if user is not None else None),
            sender=table.need_text("from"),
            recipients=table.texts("to", required=True),
            timeout=table.seconds("timeout", 30.0),
            where=table.blame,
            password_env=table.text("password_env"),
        )

    def pop3(self, table: _Table) -> POP3Settings:
        tls = cast(POP3TLS | None, table.choice("tls", POP3_TLS_MODES))
        host = table.host()
        loopback = host in ("127.0.0.1", "::1", "localhost")
        if tls is None and loopback and any(key in table.values for key in _TLS_FILES):
            # The client's default on loopback is no TLS: the files would go unused.
            raise table.error(
                "tls",
                'missing: on loopback the default is no TLS; set tls = "stls" (or '
                '"implicit" with the TLS port) to use the TLS files',
            )
        user = table.need_text("user")
        auth = cast(POP3Auth | None, table.choice("auth", POP3_AUTH))
        return POP3Settings(
            host=host,
            port=table.port(),
            tls=tls,
            ssl=table.tls_context(tls_off='tls is "none"' if tls == "none" else None),
            user=user,
            auth=auth,
            secret=table.password(who=f'user "{user}"') or "",
            max_messages=table.integer("max_messages", 1) or 100,
            timeout=table.seconds("timeout", 30.0),
            where=table.blame,
            password_env=table.text("password_env"),
        )

    def ftp(self, table: _Table) -> FTPSettings:
        tls = cast(FTPTLS, table.choice("tls", FTP_TLS_MODES, "none"))
        user = table.text("user") or "anonymous"
        anonymous = user.lower() in ("anonymous", "ftp")
        password = table.password(who=None if anonymous else f'user "{user}"')
        if anonymous and "password_env" in table.values:
            password = table.password(who=f'user "{user}"')
        downloads = table.texts("download")
        uploads = [table.readable("upload", item) for item in table.texts("upload")]
        if not downloads and not uploads:
            raise table.error("download", "missing: name the files to download or to upload")
        seen: dict[str, str] = {}
        for remote in downloads:
            local = posixpath.basename(remote.rstrip("/"))
            if local in ("", ".", ".."):
                raise table.error("download", f'"{remote}" does not name a file')
            if local in seen:
                raise table.error(
                    "download", f'"{seen[local]}" and "{remote}" would both be saved as {local}'
                )
            seen[local] = remote
        return FTPSettings(
            host=table.host(),
            port=table.port(),
            user=user,
            password=password if password is not None else "anonymous@",
            tls=tls,
            ssl=table.tls_context(tls_off='tls is "none"' if tls == "none" else None),
            passive=table.choice("mode", FTP_MODES, "passive") == "passive",
            downloads=downloads,
            uploads=uploads,
            upload_dir=(table.text("upload_dir") or "").rstrip("/"),
            timeout=table.seconds("timeout", 30.0),
            where=table.blame,
        )

    def http(self, table: _Table) -> HTTPSettings:
        url = table.need_text("url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise table.error("url", f'"{url}" is not an http:// or https:// URL with a host')
        user = table.text("user")
        proxy = table.text("proxy")
        if proxy is not None:
            scheme = urlsplit(proxy).scheme.lower() if "://" in proxy else "http"
            if (
                scheme not in _PROXY_SCHEMES
                or not urlsplit(f"{scheme}://{proxy.split('://')[-1]}").hostname
            ):
                raise table.error(
                    "proxy",
                    f'"{proxy}" is not a proxy URL (http://host:port, https://, socks5://, '
                    "socks5h://, socks4://, socks4a://)",
                )
        return HTTPSettings(
            url=url,
            ssl=table.tls_context(tls_off="the url is http://" if parts.scheme == "http" else None),
            proxy=proxy,
            user=user,
            password=table.password(who=f'user "{user}"' if user is not None else None),
            max_pages=table.integer("max_pages", 1) or 200,
            timeout=table.seconds("timeout", 30.0),
            where=table.blame,
        )
