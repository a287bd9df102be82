"""aioftp.Client with the safety rules asyncnet needs, and nothing else changed.

* Passive data connections go to the control connection's peer, never to the host
  a PASV reply names (EPSV first, which names no host at all).
* Reply lines are bounded (the control stream's reader limit) and so is the number
  of lines in one multi-line reply: an endless ``150-`` continuation from a hostile
  server ends with :class:`ReplyTooLong` instead of a loop.
* Data connections under explicit TLS reuse the control connection's TLS session
  (vsftpd and others require it) and verify the certificate against the host name
  the user gave, not the address we connect to.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import Any, Literal

import aioftp
from aioftp.common import SSLSessionBoundContext

from .._compat import AioftpControlConnection
from ..errors import ConfigurationError, PeerProtocolError, format_peer
from ._datachannel import DataChannel
from ._errors import FTPConnectionClosed, ReplyTooLong
from ._safety import pin_passive_host

__all__ = ["PinnedClient"]

MAX_REPLY_LINE = 8192
"""Bytes in one control reply line (RFC 959 replies are short; 64 KiB is asyncio's cap)."""


class PinnedClient(AioftpControlConnection, aioftp.Client):
    """aioftp's client with PASV host pinning and bounded replies."""

    def __init__(
        self,
        *,
        max_reply_lines: int = 1000,
        tls_hostname: str | None = None,
        passive_commands: Sequence[str] = ("epsv", "pasv"),
        active: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trust_server_pasv_ipv4_address", False)
        super().__init__(passive_commands=tuple(passive_commands), **kwargs)
        self.max_reply_lines = max_reply_lines
        self.tls_hostname = tls_hostname
        self.passive_commands = tuple(passive_commands)
        self.active = active
        """Active mode: the server connects to us (EPRT, else PORT), not we to it."""
        self.control_peer: tuple[Any, ...] | None = None
        self.control_writer: asyncio.StreamWriter | None = None
        """The control connection's writer, once ``connect()`` has opened it."""
        self.passive_hosts_replaced = 0
        self.current_type = "A"  # RFC 959's default until TYPE says otherwise

    async def final_reply(self) -> tuple[aioftp.Code, list[str]]:
        """Read replies up to the first that is not 1xx, whatever its code."""
        code, info = await self.parse_response()
        while code.matches("1xx"):
            code, info = await self.parse_response()
        return code, info

    async def open_control_connection(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The control connection (``connect()`` opens it here): implicit TLS if ``ssl``."""
        options: dict[str, Any] = {}
        if self.ssl:
            options["ssl"] = self.ssl
            options["server_hostname"] = self.tls_hostname or self.server_host
        reader, writer = await self._connect(host, port, **options)
        self.control_peer = writer.get_extra_info("peername")
        self.control_writer = writer
        return reader, writer

    async def _connect(
        self, host: str, port: int, **options: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        # Lines of at most MAX_REPLY_LINE on every connection.  Data connections come
        # here in plain TCP even under TLS: servers such as vsftpd begin the TLS
        # handshake only once they have the transfer command (see open_data_stream),
        # so a handshake here would wait for ever.
        async with asyncio.timeout(self.connection_timeout):
            return await asyncio.open_connection(host, port, limit=MAX_REPLY_LINE, **options)

    def _data_tls_context(self) -> ssl.SSLContext | None:
        """A context resuming the control connection's TLS session, if it has one.

        Servers (vsftpd's require_ssl_reuse) refuse data connections that do not
        resume it: proof that the data connection comes from the same client.
        """
        if self.control_writer is None:
            return None
        ssl_object = self.control_writer.get_extra_info("ssl_object")
        if ssl_object is None:
            return None
        return SSLSessionBoundContext(
            ssl.PROTOCOL_TLS_CLIENT, context=ssl_object.context, session=ssl_object.session
        )

    async def upgrade_to_tls(self, sslcontext: ssl.SSLContext | None = None) -> None:
        """AUTH TLS, checking the certificate against the name the user connected to."""
        await self.command("AUTH TLS", "234")
        if sslcontext is None:
            sslcontext = ssl.create_default_context()
        await self.stream.start_tls(
            sslcontext=sslcontext, server_hostname=self.tls_hostname or self.server_host
        )
        # RFC 4217: no protection buffer, and private (TLS) data connections too.
        await self.command("PBSZ 0", "200")
        await self.command("PROT P", "200")

    async def open_data_stream(
        self, command: str, *, offset: int = 0, conn_type: Literal["I", "A"] = "I"
    ) -> DataChannel:
        """The data connection of ``command``, closed again if it fails."""
        if self.active:
            return await self._open_active(command, offset=offset, conn_type=conn_type)
        host, port = await self.passive_address(conn_type)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connection_timeout):
            _, channel = await loop.create_connection(
                lambda: DataChannel(self.socket_timeout), host, port
            )
        try:
            if offset:
                await self.command(f"REST {offset}", "350")
            await self.command(command, "1xx")
            await self._secure_data(channel)
        except BaseException:
            channel.abort()
            raise
        self.current_type = conn_type
        return channel

    async def _open_active(
        self, command: str, *, offset: int, conn_type: Literal["I", "A"]
    ) -> DataChannel:
        """Active mode: listen where the control connection is, EPRT (else PORT), accept.

        The listener is on the control connection's local address (the one the server
        can reach) and accepts one connection, from the control connection's peer
        host only: anyone else who connects first is dropped, not taken as the data.
        """
        await self.command("TYPE " + conn_type, "200")
        assert self.control_writer is not None
        local_host = str(self.control_writer.get_extra_info("sockname")[0])
        peer_host = str(self.control_peer[0]) if self.control_peer else self.server_host
        loop = asyncio.get_running_loop()
        accepted: asyncio.Future[DataChannel] = loop.create_future()

        def made(channel: DataChannel) -> None:
            peer = channel.get_extra_info("peername")
            if accepted.done() or not peer or str(peer[0]) != peer_host:
                channel.abort()
            else:
                accepted.set_result(channel)

        def factory() -> DataChannel:
            channel = DataChannel(self.socket_timeout)
            channel.connected.add_done_callback(lambda _: made(channel))
            return channel

        listener = await loop.create_server(factory, local_host, 0, backlog=1)
        try:
            port = int(listener.sockets[0].getsockname()[1])
            await self._announce_port(local_host, port)
            if offset:
                await self.command(f"REST {offset}", "350")
            await self.command(command, "1xx")
            async with asyncio.timeout(self.connection_timeout):
                channel = await asyncio.shield(accepted)
        except BaseException:
            if accepted.done() and not accepted.cancelled():
                accepted.result().abort()
            raise
        finally:
            listener.close()
        try:
            await self._secure_data(channel)
        except BaseException:
            channel.abort()
            raise
        self.current_type = conn_type
        return channel

    async def _announce_port(self, host: str, port: int) -> None:
        """EPRT (RFC 2428, any address family); PORT where EPRT is not implemented."""
        family = 2 if ":" in host else 1
        try:
            await self.command(f"EPRT |{family}|{host}|{port}|", "200")
        except aioftp.StatusCodeError as exc:
            if family == 2 or not exc.received_codes[-1].matches("50x"):
                raise
            numbers = [*host.split("."), str(port >> 8), str(port & 255)]
            await self.command("PORT " + ",".join(numbers), "200")

    async def _secure_data(self, channel: DataChannel) -> None:
        """TLS on the data connection when the control connection has it (after 1xx)."""
        context = self._data_tls_context()
        if context is not None:
            await channel.start_tls(
                context, self.tls_hostname or self.server_host, self.connection_timeout
            )

    async def parse_line(self) -> tuple[aioftp.Code, str]:
        """One reply line, bounded; EOF is a closed connection, not an empty reply."""
        try:
            line = await self.stream.readline()
        except ValueError as exc:  # asyncio's "chunk exceed the limit"
            self.stream.close()
            raise ReplyTooLong(
                f"reply line from {format_peer(self.control_peer)} longer than "
                f"{MAX_REPLY_LINE} bytes"
            ) from exc
        if not line.endswith(b"\n"):
            self.stream.close()
            raise FTPConnectionClosed(
                f"{format_peer(self.control_peer)} closed the control connection"
                + (" in the middle of a reply" if line else ""),
                self.control_peer,
            )
        text = line.decode(self.encoding, errors="replace").rstrip("\r\n")
        return aioftp.Code(text[:3]), text[3:]

    async def parse_response(self) -> tuple[aioftp.Code, list[str]]:
        """A whole (possibly multi-line) reply, with at most ``max_reply_lines`` lines."""
        code, rest = await self.parse_line()
        info = [rest]
        current = code
        while rest.startswith("-") or not current.isdigit():
            if len(info) >= self.max_reply_lines:
                self.stream.close()
                raise ReplyTooLong(
                    f"multi-line {code} reply from {format_peer(self.control_peer)} "
                    f"went past {self.max_reply_lines} lines"
                )
            current, rest = await self.parse_line()
            if current.isdigit():
                info.append(rest)
                if current != code:
                    raise aioftp.StatusCodeError(code, current, info)
            else:
                info.append(current + rest)
        return code, info

    async def get_passive_connection(
        self, conn_type: str = "I", commands: Sequence[str] | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """aioftp's passive connection as streams, pinned like :meth:`passive_address`."""
        host, port = await self.passive_address(conn_type, commands)
        return await self._connect(host, port)

    async def passive_address(
        self, conn_type: str = "I", commands: Sequence[str] | None = None
    ) -> tuple[str, int]:
        """EPSV, else PASV; either way the host is the control connection's peer."""
        commands = [c.lower() for c in (commands or self.passive_commands)]
        await self.command("TYPE " + conn_type, "200")
        announced: str | None = None
        port: int | None = None
        for index, name in enumerate(commands, start=1):
            try:
                if name == "epsv":
                    _, info = await self.command("EPSV", "229")
                    _, port = _parse_passive(self.parse_epsv_response, info[-1])
                elif name == "pasv":
                    _, info = await self.command("PASV", "227")
                    announced, port = _parse_passive(self.parse_pasv_response, info[-1])
                else:
                    raise ConfigurationError(f"unknown passive command {name!r}")
                break
            except aioftp.StatusCodeError as exc:
                if index == len(commands) or not exc.received_codes[-1].matches("50x"):
                    raise
        if port is None or not 0 < port < 65536:
            raise PeerProtocolError(f"passive reply named port {port!r}")
        peer_host = str(self.control_peer[0]) if self.control_peer else self.server_host
        host = pin_passive_host(announced, peer_host)
        if announced is not None and announced != host and announced != "0.0.0.0":
            self.passive_hosts_replaced += 1
        return host, port


def _parse_passive(parse: Any, text: str) -> tuple[str | None, int]:
    try:
        host, port = parse(text)
    except (ValueError, IndexError) as exc:
        raise PeerProtocolError(f"malformed passive-mode reply: {text[:100]!r}") from exc
    return host, int(port)
