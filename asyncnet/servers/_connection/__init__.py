"""Per-connection protocols behind the handler classes, one job per module.

* :mod:`.base` -- what every connection shares: registering with the server (the
  connection limit, counters, graceful shutdown), the handler's ``setup()`` /
  ``finish()`` bracket, closing on a timeout.
* :mod:`.deadlines` -- the idle, partial-line and write timeouts: a
  :class:`Deadlines` object per connection in the server's shared
  :class:`DeadlineWheel`, re-armed lazily rather than on every read.
* :mod:`.line` -- :class:`LineConnection`, the fast path for ``LineHandler``.
* :mod:`.stream` -- :class:`StreamConnection`, one ``StreamHandler.handle()``
  task over asyncio streams.
"""

from .deadlines import Deadlines, DeadlineWheel
from .line import LineConnection
from .stream import StreamConnection

__all__ = ["DeadlineWheel", "Deadlines", "LineConnection", "StreamConnection"]
