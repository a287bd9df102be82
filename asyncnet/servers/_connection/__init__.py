"""Per-connection protocols behind the handler classes, one job per module.

* :mod:`.base` -- what every connection shares: registering with the server (the
  connection limit, counters, graceful shutdown), the handler's ``setup()`` /
  ``finish()`` bracket, closing on a timeout.
* :mod:`.deadlines` -- the idle, partial-line and write timeouts: three stamps per
  connection and one :class:`DeadlineSweep` per server that checks them every tick.
* :mod:`.registry` -- the server's open connections, linked through themselves.
* :mod:`.line` -- :class:`LineConnection`, the fast path for ``LineHandler``.
* :mod:`.stream` -- :class:`StreamConnection`, one ``StreamHandler.handle()``
  task per connection, its reader fed by the sans-IO line buffer.
"""

from .deadlines import DeadlineSweep
from .line import LineConnection
from .registry import Registry
from .stream import StreamConnection

__all__ = ["DeadlineSweep", "LineConnection", "Registry", "StreamConnection"]
