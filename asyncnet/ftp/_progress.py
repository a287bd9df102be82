"""Progress of a transfer as plain data, and a callback type anyone can plug in.

The library calls a :data:`ProgressCallback` with a :class:`TransferProgress` after
every chunk (and once at the start and at the end); the demo turns those calls into
a rich progress bar with :class:`RichTransfers`, a web app could push them to a
page.  The callback is synchronous on purpose: it runs between two reads and must
not slow the transfer down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ProgressCallback", "RichTransfers", "TransferProgress"]


@dataclass
class TransferProgress:
    """Where one transfer stands: bytes done, bytes expected (if known), timing."""

    path: str
    direction: Literal["download", "upload"]
    total: int | None = None
    done: int = 0
    offset: int = 0
    """Bytes that were already there when the transfer started (a resume)."""
    finished: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        """Seconds since the transfer started."""
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Bytes per second moved by this transfer (not counting a resumed prefix)."""
        elapsed = self.elapsed
        return (self.done - self.offset) / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate, or None when unknown."""
        if self.total is None or self.rate <= 0:
            return None
        return max(self.total - self.done, 0) / self.rate


ProgressCallback = Callable[[TransferProgress], Any]
"""Called with the transfer's :class:`TransferProgress`; the return value is ignored."""


class RichTransfers:
    """Drive a ``rich.progress.Progress`` (bytes, rate, ETA) from progress callbacks.

    ::

        with RichTransfers() as bars:
            await client.download("big.bin", dest, progress=bars.callback)
    """

    def __init__(self, **progress_options: Any) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            **progress_options,
        )
        self._tasks: dict[int, Any] = {}

    def callback(self, state: TransferProgress) -> None:
        """The :data:`ProgressCallback` to pass to a transfer."""
        key = id(state)
        task = self._tasks.get(key)
        if task is None:
            arrow = "<-" if state.direction == "download" else "->"
            task = self.progress.add_task(f"{arrow} {state.path}", total=state.total)
            self._tasks[key] = task
        self.progress.update(task, completed=state.done, total=state.total)
        if state.finished:
            del self._tasks[key]

    def __enter__(self) -> RichTransfers:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()
