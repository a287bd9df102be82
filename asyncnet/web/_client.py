"""The urllib / urllib2 successor: ``fetch()`` and ``Request`` over aiohttp.

::

    response = await fetch("http://127.0.0.1:8000/")             # urllib.urlopen(url)
    print(response.status, response.headers["Content-Type"], response.text()[:80])

    request = Request(url, data={"subnum": "42"})                 # urllib2.Request: data -> POST
    request.add_header("User-Agent", "asyncnet")
    request.set_proxy("127.0.0.1:8899", "http")
    response = await fetch(request)

Every call in a loop shares one aiohttp ``ClientSession`` (one connection pool); it
is closed when the loop shuts down (``asyncio.run`` / :func:`asyncnet.run`), or
explicitly by :func:`close_shared_client`.  A :class:`Client` of your own is the same
thing with your defaults, used as ``async with Client(...) as client``.

Bodies are read whole, but never past ``max_body`` bytes *after* decompression (a
gzip bomb stops there), and a body shorter than its ``Content-Length`` (or a
compressed stream cut short) is an :class:`~asyncnet.web._errors.IncompleteBody`
error, never short data.  A download has no size limit unless you give one, but
stops a body that expands more than ``max_ratio`` (100) times its size on the wire
(:class:`~asyncnet.web._errors.CompressionBomb`).  TLS takes ``ssl`` as every
asyncnet client does (:mod:`asyncnet._tls`): verified against the system's CAs by
default, or an ``SSLContext`` of your own (a private CA, a client certificate).
Redirects are followed up to ``max_redirects``; credentials are dropped when a
redirect changes origin, and a redirect to anything but http(s) is refused.

Proxies: ``proxy=`` (http, https or SOCKS), else the environment's ``HTTP_PROXY``,
``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` unless ``trust_env=False``
(:mod:`asyncnet.web._proxy`).  SOCKS needs the ``socks`` extra (aiohttp-socks).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json as jsonlib
import os
import socket
import ssl as ssllib
import weakref
import zlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from pathlib import Path
from typing import Any, Self

import aiohttp
from yarl import URL

from .._boundary import network_errors, os_reason
from .._lifecycle import Endpoint
from .._tls import SSLSetting, resolve_ssl
from ..errors import (
    ConfigurationError,
    NetworkError,
    PeerProtocolError,
    StateError,
    format_peer,
)
from ._errors import (
    BodyTooLarge,
    CompressionBomb,
    HTTPStatusError,
    IncompleteBody,
    ProxyError,
    TooManyRedirects,
    WebConfigurationError,
)
from ._proxy import ProxyChoice, check_proxy_url, choose_proxy, parse_no_proxy
from ._request import Request, Response, check_header

__all__ = [
    "Client",
    "Request",
    "Response",
    "close_shared_client",
    "download",
    "fetch",
    "shared_client",
]

USER_AGENT = "asyncnet"
MAX_BODY = 16 * 1024 * 1024
MAX_RATIO = 100.0
"""A download's default bound on decoded bytes per byte on the wire (text gzips 3-10x)."""
RATIO_GRACE = 4 * 1024 * 1024
"""Decoded bytes allowed before ``max_ratio`` applies (a small file may compress well)."""
CHUNK = 64 * 1024
PRESIZE = 64 * 1024 * 1024
"""The most :meth:`Client.fetch` sets aside for a body from its ``Content-Length``."""
READ_BUFFER = 256 * 1024
"""How much of a body aiohttp buffers before it stops reading the socket.  Its default
(64 KiB) pauses the transport once 128 KiB wait, which one 256 KiB read of the event
loop already passes; measured over HTTPS on the asyncio loop (20 MiB, loopback),
256 KiB was 6-8% faster, and 1 MiB no faster than that."""


class _Default:
    """Marks "use the client's setting" where None is a meaningful value."""


_DEFAULT = _Default()

Progress = Callable[[int, int | None], None]
"""``progress(received_bytes, total_bytes_or_None)``, called after each chunk."""


class Client(Endpoint):
    """An HTTP client with one connection pool and safe defaults.

    ``timeout`` bounds each whole request (connect, send, headers and body);
    ``max_body`` bounds each body after decompression; ``ssl`` is how https:// is
    verified (``None``/``True``: the system's CAs; an ``SSLContext``: yours, for a
    private CA or a client certificate; ``False``: https:// URLs are refused);
    ``proxy`` is a forward proxy URL (http://, https://, socks4://, socks5://...);
    ``trust_env`` reads ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and
    ``NO_PROXY``; ``no_proxy`` lists hosts reached directly (replacing ``NO_PROXY``;
    ``"*"``: every host); ``max_line_size`` / ``max_field_size`` bound the status
    line and each response header.
    """

    def __init__(
        self,
        *,
        timeout: float | None = 30.0,
        max_redirects: int = 10,
        max_body: int = MAX_BODY,
        ssl: SSLSetting = None,
        proxy: str | None = None,
        trust_env: bool = True,
        no_proxy: str | Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
        max_line_size: int = 8190,
        max_field_size: int = 8190,
    ) -> None:
        if max_redirects < 0:
            raise WebConfigurationError(f"max_redirects must be >= 0, not {max_redirects!r}")
        if max_body < 0:
            raise WebConfigurationError(f"max_body must be >= 0, not {max_body!r}")
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.max_body = max_body
        self.ssl = ssl
        self._context = _resolve(ssl)
        self._proxy = check_proxy_url(proxy) if proxy else None
        self.proxy = str(self._proxy) if self._proxy is not None else None
        self.trust_env = trust_env
        self.no_proxy = parse_no_proxy(no_proxy) if no_proxy is not None else None
        self.headers = {"User-Agent": USER_AGENT}
        for name, value in (headers or {}).items():
            check_header(name, value)
            self.headers[name] = value
        self.max_line_size = max_line_size
        self.max_field_size = max_field_size
        self._session: aiohttp.ClientSession | None = None
        # One session per SOCKS proxy: aiohttp-socks tunnels at the connector level.
        self._socks: dict[str, aiohttp.ClientSession] = {}
        self._closing: asyncio.Task[None] | None = None
        # Responses opened with decompress=False: iter_body() decodes those itself.
        self._undecoded: weakref.WeakSet[aiohttp.ClientResponse] = weakref.WeakSet()

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> Self:
        """Create the session (connection pool) on the running loop."""
        if self._session is None:
            self._session = self._new_session(None)
        return self

    def _new_session(self, connector: aiohttp.BaseConnector | None) -> aiohttp.ClientSession:
        # trust_env stays off in aiohttp: asyncnet reads the proxy variables itself (to
        # honour ALL_PROXY and SOCKS, and to name the variable when its proxy fails),
        # and aiohttp's trust_env would also send ~/.netrc credentials, which curl does
        # only when asked.
        plain_only = aiohttp.TraceConfig()
        plain_only.on_request_redirect.append(_refuse_tls_redirect)
        return aiohttp.ClientSession(
            connector=connector,
            trace_configs=[plain_only],
            headers=self.headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=self.timeout),
            max_line_size=self.max_line_size,
            max_field_size=self.max_field_size,
        )

    def _socks_session(self, choice: ProxyChoice) -> aiohttp.ClientSession:
        key = str(choice.url)
        session = self._socks.get(key)
        if session is None:
            self.session  # noqa: B018 (refuses a client that is not started)
            session = self._socks[key] = self._new_session(_socks_connector(choice))
        return session

    def close(self, grace: float | None = None) -> None:
        """Begin closing the pool (returns at once; ``grace`` unused; see :meth:`wait_closed`)."""
        if self._session is not None and self._closing is None:
            sessions = [self._session, *self._socks.values()]
            self._closing = asyncio.get_running_loop().create_task(_close_all(sessions))

    async def wait_closed(self) -> None:
        """Wait until the pool's connections are closed."""
        if self._closing is not None:
            await asyncio.shield(self._closing)

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session (for what this wrapper does not cover)."""
        if self._session is None or self._closing is not None:
            raise StateError("client is not started (use `async with Client()` or start())")
        return self._session

    # -- requests ---------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def open(
        self,
        url: str | URL | Request,
        *,
        data: bytes | str | Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        method: str | None = None,
        proxy: str | None = None,
        timeout: float | _Default | None = _DEFAULT,
        max_redirects: int | None = None,
        ssl: SSLSetting | _Default = _DEFAULT,
        auth: tuple[str, str] | None = None,
        decompress: bool = True,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send the request and yield aiohttp's response with the body unread (streaming).

        ``proxy`` (or the Request's ``set_proxy``) sends this request through that
        proxy whatever ``NO_PROXY`` says; ``ssl`` replaces the client's for this
        request; ``auth`` is ``(user, password)`` for HTTP basic authentication
        (dropped, like every credential, when a redirect changes origin).

        Errors arrive as asyncnet errors: ``NetworkError`` (``ProxyError`` when the
        proxy cannot be reached), ``OperationTimeout`` (``timeout`` bounds the whole
        block), ``TooManyRedirects``, ``IncompleteBody``, ``PeerProtocolError`` (a
        redirect to a URL that is not http(s), a malformed response),
        ``WebConfigurationError`` (an https:// URL with ``ssl=False``, a bad proxy
        setting, SOCKS without the ``socks`` extra).  With ``decompress=False`` the
        body is left as sent, to be read with :meth:`iter_body`, which decodes it in
        bounded steps.
        """
        if isinstance(url, Request):  # a copy: the caller's Request is left as it was
            request = Request(url.url, url.data, url.headers, method=method or url._method)
            request.proxy = url.proxy
            if data is not None:
                request.add_data(data)
            for name, value in (headers or {}).items():
                request.add_header(name, value)
        else:
            request = Request(url, data, headers, method=method)
        if json is not None:
            request.add_header("Content-Type", "application/json")
            request.data = jsonlib.dumps(json)
        send_headers = dict(request.headers)
        if auth is not None:
            if _has_header("Authorization", send_headers, self.headers):
                raise WebConfigurationError("give auth= or an Authorization header, not both")
            # aiohttp drops this header when a redirect changes origin, as it would auth=.
            user, password = auth
            if ":" in user:  # the user:password pair could not be split again
                raise WebConfigurationError(f"auth: a user name cannot hold ':' ({user!r})")
            send_headers["Authorization"] = aiohttp.encode_basic_auth(user, password)
        if not decompress and not _has_header("Accept-Encoding", send_headers, self.headers):
            # Offer only what iter_body() decodes (aiohttp would also offer br or zstd
            # when their packages happen to be installed).
            send_headers["Accept-Encoding"] = "gzip, deflate"
        limit = self.max_redirects if max_redirects is None else max_redirects
        deadline = self.timeout if isinstance(timeout, _Default) else timeout
        context = self._context if isinstance(ssl, _Default) else _resolve(ssl)
        target = request.url
        if context is None and target.scheme == "https":
            raise WebConfigurationError(_NO_TLS.format(url=request.full_url))
        explicit = request.proxy or proxy
        choice = (
            ProxyChoice(check_proxy_url(explicit))
            if explicit
            else choose_proxy(
                target,
                proxy=self._proxy,
                trust_env=self.trust_env,
                no_proxy=self.no_proxy,
                environ=os.environ,
            )
        )
        session, via, proxy_headers = self.session, None, None
        socks_errors: tuple[type[BaseException], ...] = ()
        if choice is not None and choice.socks:
            session = self._socks_session(choice)
            socks_errors = _socks_errors()
        elif choice is not None:
            via = choice.url.with_user(None)
            if choice.url.user is not None:
                # aiohttp sends proxy_headers with CONNECT only; a plain http:// request
                # through the proxy carries the header itself (the proxy removes it).
                login = aiohttp.encode_basic_auth(choice.url.user, choice.url.password or "")
                if target.scheme == "https":
                    proxy_headers = {"Proxy-Authorization": login}
                else:
                    send_headers["Proxy-Authorization"] = login
        peer = (target.host, target.port)
        phase = f"{request.method} {request.full_url}"
        async with network_errors(peer, phase, deadline, subject=phase):
            try:
                async with session.request(
                    request.method,
                    target,
                    data=request.data,
                    headers=send_headers,
                    proxy=via,
                    proxy_headers=proxy_headers,
                    allow_redirects=limit > 0,
                    max_redirects=max(limit, 1),
                    # With ssl=False a redirect to https:// is refused before it is
                    # followed (_refuse_tls_redirect); aiohttp's own ssl=False would
                    # mean "TLS unverified", so it never gets that value.
                    ssl=context if context is not None else True,
                    trace_request_ctx=_NO_TLS_MARK if context is None else None,
                    auto_decompress=decompress,
                    read_bufsize=READ_BUFFER,
                ) as response:
                    if not decompress:
                        self._undecoded.add(response)
                    yield response
            except (aiohttp.ClientSSLError, aiohttp.ClientConnectorCertificateError) as exc:
                # Its errno (1, EPERM) would read "Operation not permitted": say what failed.
                reason = getattr(exc, "certificate_error", None) or exc
                raise NetworkError(f"{phase} failed: TLS: {reason}", peer, "tls") from exc
            except aiohttp.ClientConnectorError as exc:
                # Refused or unresolvable *proxy*: name it, not the target, as what to check.
                if choice is None or (exc.host, exc.port) != choice.address:
                    raise  # the target's own failure: network_errors() words it
                raise _proxy_error(phase, choice, exc.os_error) from exc
            except socks_errors as exc:
                raise _socks_error(phase, choice, exc) from exc
            except aiohttp.ClientHttpProxyError as exc:  # CONNECT answered with an error
                assert choice is not None
                origin = f" (from {choice.source})" if choice.source else ""
                raise ProxyError(
                    f"{phase} failed: proxy {format_peer(choice.address)}{origin} refused "
                    f"the tunnel: {exc.status} {exc.message}",
                    choice.address,
                    "proxy",
                    reason=f"{exc.status} {exc.message}",
                    source=choice.source,
                ) from exc
            except aiohttp.TooManyRedirects as exc:
                raise TooManyRedirects(request.full_url, limit) from exc
            except aiohttp.ClientPayloadError as exc:
                raise IncompleteBody(request.full_url, str(exc)) from exc
            except aiohttp.InvalidURL as exc:
                raise PeerProtocolError(f"{phase}: bad redirect location ({exc})") from exc
            except aiohttp.RedirectClientError as exc:  # file://, ftp://, data:...
                raise PeerProtocolError(
                    f"{phase}: redirected to {exc}, which is not an http(s) URL"
                ) from exc
            except aiohttp.ServerDisconnectedError as exc:
                # Not an OSError in aiohttp's tree: left alone it escapes every handler.
                raise NetworkError(
                    f"{phase} failed: the server closed the connection without an answer",
                    peer,
                    "response",
                ) from exc
            except aiohttp.ClientResponseError as exc:
                raise PeerProtocolError(f"{phase}: bad response ({exc.message})") from exc

    async def iter_body(
        self,
        response: aiohttp.ClientResponse,
        *,
        max_body: int | None = None,
        max_ratio: float | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """The body of an :meth:`open` response, in chunks, decoded and bounded.

        Each chunk is what aiohttp has buffered (up to :data:`READ_BUFFER` bytes and
        one read more).  A body opened with ``decompress=False`` is decoded here
        (gzip, deflate) at most 64 KiB at a time; past ``max_body`` decoded bytes it
        is :class:`BodyTooLarge`, and past :data:`RATIO_GRACE` decoded bytes, more
        than ``max_ratio`` decoded bytes per byte on the wire is
        :class:`CompressionBomb` (the connection is dropped either way).  A body
        shorter than announced is :class:`IncompleteBody`.
        """
        url = str(response.url)
        raw = response in self._undecoded
        decoder = _Decoder(response.headers.get("Content-Encoding", "") if raw else "", url)
        wire = size = 0
        # Each chunk as aiohttp buffered it: iter_chunked() would slice and join every
        # one again, a copy of the body in pieces.  A decoded piece is still at most
        # CHUNK bytes (_Decoder); an undecoded one at most what one read brought.
        async for chunk in response.content.iter_any():
            wire += len(chunk)
            for piece in decoder.feed(chunk):
                size += len(piece)
                if max_body is not None and size > max_body:
                    response.close()  # the rest is never read: drop the connection
                    raise BodyTooLarge(url, max_body)
                if raw and max_ratio and size > RATIO_GRACE and size > max_ratio * wire:
                    response.close()
                    raise CompressionBomb(url, max_ratio, size, wire)
                yield piece
        decoder.finish()
        # aiohttp raises ClientPayloadError for a short Content-Length body; this is a
        # second line of defence (on the bytes as sent, when we decode them ourselves).
        expected = response.content_length
        counted = wire if raw else size
        encoded = not raw and response.headers.get("Content-Encoding", "identity") != "identity"
        short = expected is not None and not encoded and counted < expected
        if short and response.method != "HEAD":
            raise IncompleteBody(url, f"{counted} of {expected} bytes")

    async def fetch(
        self,
        url: str | URL | Request,
        *,
        max_body: int | None = None,
        **options: Any,
    ) -> Response:
        """Send the request and read the whole body (at most ``max_body`` bytes)."""
        limit = self.max_body if max_body is None else max_body
        async with self.open(url, decompress=False, **options) as response:
            body = _BodyBuffer(response, limit)
            async for chunk in self.iter_body(response, max_body=limit):
                body.write(chunk)
            return Response(
                url=str(response.url),
                status=response.status,
                reason=response.reason or "",
                headers=response.headers,
                body=body.value(),
                history=tuple(str(r.url) for r in response.history),
                charset=response.charset,
            )

    async def download(
        self,
        url: str | URL | Request,
        path: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        max_body: int | None = None,
        max_ratio: float | None = MAX_RATIO,
        **options: Any,
    ) -> int:
        """Stream the body to ``path`` (via ``path.part``, renamed when complete); return bytes.

        A 4xx/5xx status is :class:`HTTPStatusError`.  ``max_body`` bounds the size
        saved (``None``: no bound) and ``max_ratio`` the decoded bytes per byte on the
        wire (``None``: no bound; see :meth:`iter_body`).  A failed download leaves
        nothing behind.  The client's ``timeout`` bounds each read here (a stall), not
        the whole transfer, unless you pass ``timeout=`` explicitly.
        """
        options.setdefault("timeout", None)
        target = Path(path)
        part = target.with_name(target.name + ".part")
        size = 0
        try:
            async with self.open(url, decompress=False, **options) as response:
                _raise_for_status(response)
                # Content-Length counts the bytes as sent: a total only when they are the file.
                coding = response.headers.get("Content-Encoding", "identity").strip().lower()
                total = response.content_length if coding == "identity" else None
                with part.open("wb") as out:
                    body = self.iter_body(response, max_body=max_body, max_ratio=max_ratio)
                    async for chunk in body:
                        size += len(chunk)
                        out.write(chunk)
                        if progress is not None:
                            progress(size, total)
            part.replace(target)
        finally:
            part.unlink(missing_ok=True)
        return size


def _has_header(name: str, *headers: Mapping[str, str]) -> bool:
    wanted = name.lower()
    return any(key.lower() == wanted for mapping in headers for key in mapping)


_NO_TLS = (
    "{url}: this client was made with ssl=False (no TLS); pass ssl=None to verify "
    "https:// with the system's CAs, or an SSLContext"
)


def _resolve(setting: SSLSetting) -> ssllib.SSLContext | None:
    # resolve_ssl() words its refusal for every client; here it is a web setting too.
    try:
        return resolve_ssl(setting)
    except ConfigurationError as exc:
        raise WebConfigurationError(str(exc)) from None


_NO_TLS_MARK = object()


async def _refuse_tls_redirect(
    session: aiohttp.ClientSession,
    context: Any,
    params: aiohttp.TraceRequestRedirectParams,
) -> None:
    """Refuse, before it is followed, a redirect to https:// made with ssl=False."""
    if context.trace_request_ctx is not _NO_TLS_MARK:
        return
    location = params.response.headers.get("Location", "")
    try:
        scheme = params.url.join(URL(location)).scheme
    except ValueError:
        return  # aiohttp refuses a malformed Location itself
    if scheme == "https":
        params.response.close()
        raise WebConfigurationError(_NO_TLS.format(url=location))


async def _close_all(sessions: list[aiohttp.ClientSession]) -> None:
    for session in sessions:
        await session.close()


def _socks_connector(choice: ProxyChoice) -> aiohttp.BaseConnector:
    """An aiohttp-socks connector for ``choice`` (a ``socks*://`` proxy)."""
    try:
        from aiohttp_socks import ProxyConnector, ProxyType
    except ImportError:
        raise WebConfigurationError(
            f"{choice.setting} {choice.shown}: SOCKS proxies need aiohttp-socks: "
            "install asyncnet[socks]"
        ) from None
    scheme = choice.url.scheme
    host, port = choice.address
    connector: aiohttp.BaseConnector = ProxyConnector(
        proxy_type=ProxyType.SOCKS4 if scheme.startswith("socks4") else ProxyType.SOCKS5,
        host=host or "",
        port=port or 0,
        username=choice.url.user,
        password=choice.url.password,
        # socks5h / socks4a: the proxy resolves the name (curl's meaning of the "h").
        rdns=scheme in ("socks5h", "socks4a"),
    )
    return connector


def _socks_errors() -> tuple[type[BaseException], ...]:
    from aiohttp_socks import ProxyConnectionError
    from aiohttp_socks import ProxyError as SocksError

    return (ProxyConnectionError, SocksError)


def _proxy_error(phase: str, choice: ProxyChoice, os_error: OSError) -> ProxyError:
    reason = os_reason(os_error)
    code = os_error.errno if not isinstance(os_error, socket.gaierror) else None
    origin = f" (from {choice.source})" if choice.source else ""
    return ProxyError(
        f"{phase} failed: proxy {format_peer(choice.address)}{origin}: {reason}",
        choice.address,
        "proxy",
        errno=code if isinstance(code, int) and code > 0 else None,
        reason=reason,
        source=choice.source,
    )


def _socks_error(phase: str, choice: ProxyChoice | None, exc: BaseException) -> NetworkError:
    """aiohttp-socks' errors: the proxy unreachable or failing its handshake (a
    ProxyError), or its answer that it could not reach the target (a NetworkError)."""
    from aiohttp_socks import ProxyConnectionError

    assert choice is not None
    if isinstance(exc, ProxyConnectionError):  # the proxy itself could not be reached
        link: BaseException | None = exc
        while link is not None and not (isinstance(link, OSError) and link.errno):
            link = link.__cause__
        return _proxy_error(phase, choice, link if isinstance(link, OSError) else OSError(str(exc)))
    reason = str(exc).lower() or type(exc).__name__
    origin = f" (from {choice.source})" if choice.source else ""
    if getattr(exc, "error_code", None) is None:  # the handshake failed: login, protocol
        return ProxyError(
            f"{phase} failed: SOCKS proxy {format_peer(choice.address)}{origin}: {reason}",
            choice.address,
            "proxy",
            reason=reason,
            source=choice.source,
        )
    return NetworkError(  # the proxy's reply: it could not reach the server
        f"{phase} failed: SOCKS proxy {format_peer(choice.address)}{origin} could not "
        f"reach the server: {reason}",
        choice.address,
        "connect",
        reason=reason,
    )


class _Decoder:
    """Undoes a Content-Encoding (gzip or deflate), at most :data:`CHUNK` bytes a step.

    aiohttp decodes too, but its count of bytes as sent is not public, and before 3.12
    it expanded each compressed chunk whole (a 64 KiB chunk of a bomb is 64 MiB).
    """

    def __init__(self, coding: str, url: str) -> None:
        self.url = url
        self.coding = coding.strip().lower()
        self._zlib: Any = None
        self._fed = False
        if self.coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.coding not in ("", "identity", "deflate"):
            raise PeerProtocolError(
                f"response from {url} has Content-Encoding {self.coding!r}, which asyncnet "
                "does not decode (it asks for gzip or deflate)"
            )

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of ``data``, in pieces of at most :data:`CHUNK` bytes."""
        if self.coding in ("", "identity"):
            yield data
            return
        if not data:
            return
        if self._zlib is None:
            # "deflate" is meant to be zlib-wrapped (RFC 9110 8.4.1.2); some servers send
            # a raw deflate stream: a zlib header's low nibble is 8 (the method).
            raw = data[0] & 0x0F != 8
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        self._fed = True
        try:
            while not self._zlib.eof:
                piece = self._zlib.decompress(data, CHUNK)
                data = self._zlib.unconsumed_tail
                if piece:
                    yield piece
                if not data and len(piece) < CHUNK:
                    break  # all input used and nothing more pending
        except zlib.error as exc:
            raise PeerProtocolError(
                f"cannot decode the {self.coding} body from {self.url}: {exc}"
            ) from exc

    def finish(self) -> None:
        """Check that a compressed stream ended where the body did."""
        if self._fed and not self._zlib.eof:
            raise IncompleteBody(self.url, f"the {self.coding}-compressed body ends early")


class _BodyBuffer:
    """A whole body collected in one buffer, handed over as bytes without a copy.

    Joining a list of chunks holds the body twice at its peak (measured with
    tracemalloc: 2.0x the body, against 1.0x), and with aiohttp's own 256 KiB
    buffers as the chunks, the allocator mapped fresh pages for every fetch (10,600
    page faults and 20 ms of system time per 20 MiB).  ``io.BytesIO.getvalue()``
    hands over its own bytes object when nothing else holds the buffer, and a buffer
    sized once from ``Content-Length`` never moves while it fills.  It is sized up
    front to ``max_body`` and :data:`PRESIZE` at most: a header alone must not make
    the client set aside memory the server never sends.
    """

    def __init__(self, response: aiohttp.ClientResponse, limit: int) -> None:
        self._buffer = io.BytesIO()
        self._size = 0
        coding = response.headers.get("Content-Encoding", "identity").strip().lower()
        expected = response.content_length
        if expected and coding == "identity" and response.method != "HEAD":
            reserve = min(expected, limit, PRESIZE)
            if reserve > 1:
                # Writing one byte at the end sizes the buffer exactly, at once.
                self._buffer.seek(reserve - 1)
                self._buffer.write(b"\0")
                self._buffer.seek(0)

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``."""
        self._buffer.write(chunk)
        self._size += len(chunk)

    def value(self) -> bytes:
        """The bytes written (nothing of the reserve beyond them)."""
        self._buffer.truncate(self._size)
        return self._buffer.getvalue()


def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    # A download keeps only successful bodies: an error page is not the file.
    if response.status >= 400:
        raise HTTPStatusError(response.status, response.reason or "", str(response.url))


# -- the shared client: one session per loop ----------------------------------------------------

_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Client, Any]] = (
    weakref.WeakKeyDictionary()
)


async def _closer(client: Client) -> AsyncIterator[None]:
    # A suspended async generator is closed by loop.shutdown_asyncgens(), which
    # asyncio.run() and asyncio.Runner call: the shared session closes with the loop.
    try:
        yield
    finally:
        await client.stop()


async def shared_client() -> Client:
    """The running loop's shared :class:`Client` (created on first use)."""
    loop = asyncio.get_running_loop()
    entry = _shared.get(loop)
    if entry is None or entry[0]._closing is not None:
        client = await Client().start()
        closer = _closer(client)
        await anext(closer)
        _shared[loop] = (client, closer)
        return client
    return entry[0]


async def close_shared_client() -> None:
    """Close the running loop's shared client now (the next fetch opens a new one)."""
    entry = _shared.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        await entry[1].aclose()


async def fetch(url: str | URL | Request, **options: Any) -> Response:
    """Fetch ``url`` (or a :class:`Request`) with the shared client; see :meth:`Client.fetch`."""
    return await (await shared_client()).fetch(url, **options)


async def download(url: str | URL | Request, path: str | os.PathLike[str], **options: Any) -> int:
    """Stream ``url`` to ``path`` with the shared client; see :meth:`Client.download`."""
    return await (await shared_client()).download(url, path, **options)
