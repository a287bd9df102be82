"""``python -m benchmarks``: asyncnet against the threaded originals it replaces.

Runs the upper service as asyncnet (stdlib loop and uvloop, 1 and 2 workers), the
classic threaded and forking ``socketserver`` versions from ``demos/``, the naive
asyncio streams rewrite and a bare asyncio Protocol server, each in its own
process, and drives each with a load generator in another process (uvloop,
``asyncio.Protocol``, ping-pong over 1 to 1000 connections; UDP with 10 datagrams in
flight).  It reports req/s, p50/p99 latency, the server's CPU time per request
(from ``/proc``, meaningful even when the generator is the limit), memory per idle
connection, and the generator's own ceiling, and marks each target of
``targets.toml`` met or missed.

Run from the repository root (``make bench``, ``make bench-quick``)::

    python -m benchmarks --quick                  # about 1.5 minutes
    python -m benchmarks --json r.json --plot r.png
    python -m benchmarks --impl asyncnet-uvloop --impl bare-uvloop --points 100

Linux only (``/proc``, ``sched_setaffinity``); loopback only.  ``rich`` and
``matplotlib`` come with the ``bench`` extra.  The package is not part of the
asyncnet wheel: it runs from a checkout.  ``test_*.py`` here are the
pytest-benchmark micro-benchmarks (``make bench-micro``).
"""
