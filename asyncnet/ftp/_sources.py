"""What ``store()`` accepts, as one async iterator of blocks.

ftplib's storbinary wanted an open file; here a path, an open binary file (sync, or
with an async ``read``), ``bytes`` or any async iterator of bytes all work.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import ConfigurationError

__all__ = ["Source", "iter_source", "source_size"]

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO | AsyncIterable[bytes]


def source_size(source: Any) -> int | None:
    """Bytes the source will yield, when that can be known up front."""
    if isinstance(source, bytes | bytearray | memoryview):
        return len(source)
    if isinstance(source, str | os.PathLike):
        try:
            return Path(source).stat().st_size
        except OSError:
            return None
    fileno = getattr(source, "fileno", None)
    if fileno is not None:
        try:
            size = os.fstat(fileno()).st_size
            tell = getattr(source, "tell", None)
            return int(size - tell()) if tell is not None else int(size)
        except (OSError, ValueError):
            return None
    return None


async def iter_source(source: Any, block_size: int) -> AsyncIterator[bytes]:
    """Yield the source's bytes in blocks of at most ``block_size``."""
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source).cast("B")
        for start in range(0, len(view), block_size):
            yield bytes(view[start : start + block_size])
    elif isinstance(source, str | os.PathLike):
        # Local disk reads of one block each are short; a thread per block would cost more.
        with open(source, "rb") as file:  # noqa: ASYNC230
            while block := file.read(block_size):
                yield block
    elif hasattr(source, "read"):
        while True:
            block = source.read(block_size)
            if inspect.isawaitable(block):
                block = await block
            if isinstance(block, str):
                raise ConfigurationError("store(): open the file in binary mode ('rb')")
            if not block:
                break
            yield bytes(block)
    elif isinstance(source, AsyncIterable):
        async for block in source:
            if not isinstance(block, bytes | bytearray | memoryview):
                raise ConfigurationError(
                    f"store(): the async iterator yielded {type(block).__name__}, not bytes"
                )
            yield bytes(block)
    else:
        raise ConfigurationError(
            "store() takes a path, an open binary file, bytes or an async iterator of "
            f"bytes, not {type(source).__name__}"
        )
