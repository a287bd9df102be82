"""Mr. Creosote, async: UDP debug messages, the bucket listener, logging, a live web view.

The tutorial's creosote module spews debug messages at a UDP port; it does not
matter whether anything listens.  A *bucket* listener prints whatever arrives::

    from asyncnet import creosote

    await creosote.spew("it's only wafer-thin")             # 127.0.0.1:PORT, BUFSIZE chunks

    async with creosote.Bucket(port=0) as bucket:           # the listener, in your loop
        async for message in bucket:
            print(creosote.format_line(message))

    logging.getLogger().addHandler(creosote.CreosoteHandler())   # logs to the bucket

Module settings, as in the tutorial (every function also takes them per call):

* :data:`PORT` -- 5555 (UDP), the default port of every emitter and bucket.  The
  upper-case demo uses 9999 and the chat demo 9998, so the creosote demos can run
  beside them.
* :data:`BUFSIZE` -- 1024, the largest datagram an emitter sends (in framed mode the
  18-byte header is included).

The wire format (raw and framed) is documented in :mod:`asyncnet.creosote._protocol`;
the live web view is :mod:`asyncnet.creosote._web` (needs aiohttp).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import BroadcastNotAllowed, CreosoteError
from ._bucket import Bucket, BucketStats, Subscription
from ._emitter import Emitter, spew
from ._emitter_base import EmitterStats, is_broadcast_address
from ._formatting import format_line
from ._log_handler import CreosoteHandler
from ._protocol import Message, safe_text
from ._socket_emitter import SocketEmitter

PORT = 5555
"""Default UDP port of emitters and buckets (read at call time: assign to change it)."""

BUFSIZE = 1024
"""Default largest datagram an emitter sends (read at call time: assign to change it)."""

if TYPE_CHECKING:
    from ._web import WebView, WebViewStats


def __getattr__(name: str) -> Any:
    # The web view needs aiohttp: imported when first asked for, so that a program
    # that only emits or listens does not pay for aiohttp.
    if name in ("WebView", "WebViewStats"):
        from . import _web

        return getattr(_web, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CreosoteError",
    "WebView",
    "WebViewStats",
    "BUFSIZE",
    "PORT",
    "BroadcastNotAllowed",
    "Bucket",
    "BucketStats",
    "CreosoteHandler",
    "Emitter",
    "EmitterStats",
    "Message",
    "SocketEmitter",
    "Subscription",
    "format_line",
    "is_broadcast_address",
    "safe_text",
    "spew",
]
