"""A file's bytes to a stream transport with the kernel's ``sendfile()``, on any event loop.

``loop.sendfile()`` is native on the stdlib loop's plain TCP transports and falls back
to reading and writing for TLS; uvloop does not implement it at all (it raises
``NotImplementedError``), so on uvloop every byte of a static file used to be read
into Python in a worker thread and copied into the transport's buffer.
:func:`send_file` gives uvloop what the stdlib loop does: once the transport's own
write buffer is empty, ``os.sendfile()`` on its socket, waiting for writability on
a duplicate of the descriptor (the loop refuses to watch the one a transport owns,
and the duplicate stays valid whenever the transport closes its own).  A TLS transport,
one without a socket, or a platform without ``os.sendfile`` goes through
:func:`copy_file`, which reads in bounded chunks in a worker thread.

Both return the number of bytes sent: fewer than asked only when the file ended
first (it shrank), which the caller must treat as fatal for the connection.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import Awaitable, Callable
from typing import BinaryIO

__all__ = ["CHUNK", "copy_file", "native_socket", "send_file", "wait_flushed"]

CHUNK = 256 * 1024
"""Bytes read per step when the file is copied through the transport."""

BURST = 1024 * 1024
"""Bytes one ``sendfile()`` call may send before the loop serves other connections."""


def native_socket(transport: asyncio.BaseTransport) -> socket.socket | None:
    """The socket ``transport`` writes to unencrypted, or None (TLS, pipes, no socket)."""
    if not hasattr(os, "sendfile"):
        return None
    if transport.get_extra_info("sslcontext") is not None:
        return None
    if transport.get_extra_info("ssl_object") is not None:
        return None  # uvloop's TLS transport also reports the raw socket underneath
    sock = transport.get_extra_info("socket")
    if sock is None or sock.type != socket.SOCK_STREAM:
        return None
    if sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        return None
    return sock  # type: ignore[no-any-return]


async def send_file(
    transport: asyncio.WriteTransport,
    file: BinaryIO,
    offset: int,
    count: int,
    *,
    drained: Callable[[], Awaitable[None]],
    write: Callable[[bytes], Awaitable[None]],
) -> int:
    """Send ``count`` bytes of ``file`` from ``offset``; return how many were sent.

    ``drained`` waits until the transport's write buffer is empty (what was written
    before must reach the socket first); ``write`` writes and drains a chunk, for
    the copying path.  Raises ``ConnectionResetError`` when the peer goes away.
    """
    if count <= 0:
        return 0
    loop = asyncio.get_running_loop()
    try:
        return await loop.sendfile(transport, file, offset, count)
    except NotImplementedError:  # uvloop
        pass
    sock = native_socket(transport)
    if sock is None:
        return await copy_file(file, offset, count, write)
    await drained()
    return await _sendfile_native(loop, transport, sock.fileno(), file.fileno(), offset, count)


async def wait_flushed(
    transport: asyncio.WriteTransport, drain: Callable[[], Awaitable[None]]
) -> None:
    """Wait until everything written to ``transport`` has reached its socket.

    ``drain`` is the protocol's flow-control wait (aiohttp's ``writer.drain()``,
    asyncio's ``StreamWriter.drain()``): it returns once the transport has resumed
    the protocol.  With both water marks at zero the transport pauses its protocol
    while anything is buffered and resumes it once the buffer is empty, so ``drain``
    then waits for exactly that; the marks are restored afterwards.
    """
    if transport.get_write_buffer_size() == 0:
        return
    low, high = transport.get_write_buffer_limits()
    transport.set_write_buffer_limits(high=0, low=0)
    try:
        await drain()
    finally:
        transport.set_write_buffer_limits(high=high, low=low)


async def _sendfile_native(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.BaseTransport,
    out_fd: int,
    in_fd: int,
    offset: int,
    count: int,
) -> int:
    # A duplicate, not the transport's descriptor: the loop refuses to watch that
    # one, and should the transport close it meanwhile, its number could already
    # name another file by the time this coroutine resumes.
    fd = os.dup(out_fd)
    sent = 0
    try:
        while sent < count:
            if transport.is_closing():
                raise ConnectionResetError("connection lost while sending a file")
            try:
                n = os.sendfile(fd, in_fd, offset + sent, min(count - sent, BURST))
            except BlockingIOError:
                await _writable(loop, fd)
                continue
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                    raise ConnectionResetError(
                        f"connection lost while sending a file: {exc}"
                    ) from exc
                raise
            if n == 0:
                break  # the file ended early
            sent += n
            if sent < count:
                # One connection must not hold the loop for a whole large file.
                await asyncio.sleep(0)
    finally:
        os.close(fd)
    return sent


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    """Wait until ``fd`` can take more bytes."""
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        await ready
    finally:
        loop.remove_writer(fd)


async def copy_file(
    file: BinaryIO, offset: int, count: int, write: Callable[[bytes], Awaitable[None]]
) -> int:
    """Read ``count`` bytes from ``offset`` in a worker thread, chunk by chunk, and write them."""
    loop = asyncio.get_running_loop()
    sent = 0
    while sent < count:
        chunk = await loop.run_in_executor(
            None, os.pread, file.fileno(), min(CHUNK, count - sent), offset + sent
        )
        if not chunk:
            break
        await write(chunk)
        sent += len(chunk)
    return sent
