"""The tutorial's web section on asyncio: client, static server, CGI, forms, debug pages, links.

* :mod:`.client`: ``fetch()`` and urllib2's ``Request`` over one shared aiohttp session,
  with TLS as every client takes it (``ssl=``) and proxies (the environment, SOCKS).
* :mod:`.static`: SimpleHTTPServer's successor with strict path resolution.
* :mod:`.cgi`: CGIHTTPServer's successor (RFC 3875, no shell, limits).
* :mod:`.forms`: cgi.FieldStorage's successor (``getfirst`` / ``getlist``, safe uploads).
* :mod:`.debug`: cgitb's successor (tracebacks only with debug, only to loopback).
* :mod:`.links`: htmllib's link extraction and a bounded same-origin crawler.
* :mod:`.server`: an aiohttp app as an asyncnet server, and the demo site.
"""

from __future__ import annotations

from ._cgi import CGIRunner
from ._client import MAX_RATIO, Client, Request, Response, close_shared_client, download, fetch
from ._debug import error_middleware
from ._errors import (
    BodyTooLarge,
    CompressionBomb,
    HTTPStatusError,
    IncompleteBody,
    ProxyError,
    TooManyRedirects,
    UnsafeRequest,
    WebConfigurationError,
    WebError,
)
from ._forms import Form, FormPage, Upload, read_form, sanitise_filename
from ._links import Broken, CrawlReport, crawl, extract_links
from ._server import WebServer, site_app, web_server
from ._static import StaticFiles

__all__ = [
    "MAX_RATIO",
    "Broken",
    "BodyTooLarge",
    "CGIRunner",
    "Client",
    "CompressionBomb",
    "CrawlReport",
    "Form",
    "FormPage",
    "HTTPStatusError",
    "IncompleteBody",
    "Request",
    "ProxyError",
    "Response",
    "StaticFiles",
    "TooManyRedirects",
    "UnsafeRequest",
    "Upload",
    "WebConfigurationError",
    "WebError",
    "WebServer",
    "close_shared_client",
    "crawl",
    "download",
    "error_middleware",
    "extract_links",
    "fetch",
    "read_form",
    "sanitise_filename",
    "site_app",
    "web_server",
]
