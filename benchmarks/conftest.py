"""Micro-benchmarks (pytest-benchmark): the per-line and per-datagram cost of asyncnet's
fast paths against a bare asyncio protocol, without sockets.

    make bench-micro        # or: .venv/bin/python -m pytest benchmarks --benchmark-only

Not collected by ``make test`` (``testpaths = ["tests"]``).  They call protocol
callbacks directly with a transport that only counts bytes, so they measure Python
work per line, not the kernel: the stable way to see the framework's overhead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest


class CountingTransport(asyncio.Transport):
    """A transport that swallows writes: the protocol's own cost, nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def write(self, data: Any) -> None:
        self.written += len(data)

    def sendto(self, data: Any, addr: Any = None) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop to start servers on; the benchmarks call callbacks directly."""
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()
