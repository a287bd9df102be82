"""Raw HTTP on loopback for the web tests: bytes exactly as written, no client normalising."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from .helpers import read_all


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def parse_response(raw: bytes) -> RawResponse:
    """The first response in ``raw`` (status, lower-cased headers, the rest as body)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(status, headers, body, raw)


async def raw_exchange(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``data`` to 127.0.0.1:``port``, half-close nothing, read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await read_all(reader, timeout)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def raw_get(port: int, target: str | bytes, headers: str = "") -> RawResponse:
    """``GET target`` as written, with ``Connection: close``; the parsed response."""
    if isinstance(target, str):
        target = target.encode("latin-1")
    request = (
        b"GET "
        + target
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + headers.encode("latin-1")
        + b"\r\n"
    )
    return parse_response(await raw_exchange(port, request))


async def raw_response(port: int, data: bytes, *, timeout: float = 5.0) -> RawResponse:
    """Send ``data``; read one response (head and Content-Length body), not up to EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        async with asyncio.timeout(timeout):
            head = await reader.readuntil(b"\r\n\r\n")
            response = parse_response(head)
            length = int(response.headers.get("content-length", "0"))
            response.body = await reader.readexactly(length)
            response.raw = head + response.body
        return response
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
