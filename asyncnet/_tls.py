"""Client TLS settings, one way for every client: ``ssl: SSLContext | bool | None``.

Every client API (mail, FTP, web) takes ``ssl`` the same way, and every client demo
offers ``--cafile``, ``--cert`` and ``--key`` that build the context here:

* ``None`` or ``True``: verify against the system's trust store (the default);
* an :class:`ssl.SSLContext`: used as given (a private CA, a client certificate);
* ``False``: no TLS.  Never "TLS without verification": that is a context the caller
  builds on purpose, so it shows in their code.

``cafile`` *adds* a CA to the system store (``SSL_CERT_FILE`` replaces it, which is
rarely what someone with one private CA wants).
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from .errors import ConfigurationError

__all__ = ["SSLSetting", "client_context", "resolve_ssl"]

SSLSetting = ssl.SSLContext | bool | None
"""What a client's ``ssl`` argument accepts."""


def client_context(
    *,
    cafile: str | os.PathLike[str] | None = None,
    certfile: str | os.PathLike[str] | None = None,
    keyfile: str | os.PathLike[str] | None = None,
) -> ssl.SSLContext:
    """A verifying client context: the system's CAs plus ``cafile``, and a client
    certificate when ``certfile`` is given (its key in ``keyfile`` or in the same file).

    Raises :class:`~asyncnet.errors.ConfigurationError` naming the file when one is
    missing or is not what it should be.
    """
    context = ssl.create_default_context()
    if cafile is not None:
        _readable(cafile, "--cafile")
        try:
            context.load_verify_locations(cafile=os.fspath(cafile))
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigurationError(
                f"--cafile {os.fspath(cafile)}: not a PEM CA certificate ({_reason(exc)})"
            ) from None
    if keyfile is not None and certfile is None:
        raise ConfigurationError("--key needs --cert (the certificate the key belongs to)")
    if certfile is not None:
        _readable(certfile, "--cert")
        if keyfile is not None:
            _readable(keyfile, "--key")
        try:
            context.load_cert_chain(
                os.fspath(certfile), os.fspath(keyfile) if keyfile is not None else None
            )
        except (ssl.SSLError, ValueError) as exc:
            where = f"--cert {os.fspath(certfile)}"
            if keyfile is not None:
                where += f" --key {os.fspath(keyfile)}"
            raise ConfigurationError(
                f"{where}: not a PEM certificate and its key ({_reason(exc)})"
            ) from None
    return context


def resolve_ssl(setting: SSLSetting) -> ssl.SSLContext | None:
    """The context a client connects with for ``setting``; ``None`` means no TLS."""
    if setting is False:
        return None
    if setting is None or setting is True:
        return ssl.create_default_context()
    if isinstance(setting, ssl.SSLContext):
        return setting
    raise ConfigurationError(
        f"ssl must be an ssl.SSLContext, True, False or None, not {type(setting).__name__}"
    )


def _readable(path: str | os.PathLike[str], option: str) -> None:
    name = os.fspath(path)
    if not Path(name).is_file():
        raise ConfigurationError(f"{option} {name}: no such file")
    if not os.access(name, os.R_OK):
        raise ConfigurationError(f"{option} {name}: not readable")


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc).lower() or type(exc).__name__
