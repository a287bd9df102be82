"""The embedded FTP server's data connections: PASV/EPSV listeners, PORT/EPRT connections.

Passive mode (PASV, EPSV) listens on the control connection's local address and
accepts the data connection only from the control connection's peer host: anyone
else who races to the port (RFC 2577's "port stealing") is closed at once.

Active mode (PORT, EPRT) connects to the address the client names, as soon as it
names it (as pyftpdlib does), and replies ``200`` once connected or ``425``; the next
transfer uses that connection.  The argument is parsed by plain code with no I/O
(:func:`port_address`, :func:`eprt_address`), which also decides whom the server may
connect to.  That address must be the control connection's own peer: a client that
names another host would have the server open connections for it (the "FTP bounce"
of RFC 2577: port scans, or mail sent through the server's address), so any other
address is refused with ``501``, as is a privileged port (below 1024), where a
bounce does most harm and no FTP client listens.

With TLS for data (implicit FTPS, or PROT P after AUTH TLS) each data connection,
passive or active, runs the server side of TLS itself (:class:`DataStream`), its
handshake when its transfer starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import PurePosixPath
from typing import Any

import aioftp
from aioftp.common import Connection, ThrottleStreamIO

from ._server_session import SessionLoop, logger

__all__ = [
    "DataAddressRefused",
    "DataConnections",
    "DataStream",
    "eprt_address",
    "logged_in",
    "port_address",
    "same_host",
]

_ACTIVE_CONNECT_TIMEOUT = 10.0
"""Seconds PORT/EPRT waits for the client to accept (unless ``socket_timeout`` says)."""

_EPRT_PROTOCOLS = {"1": 4, "2": 6}
"""EPRT's network protocol numbers (RFC 2428): 1 is IPv4, 2 is IPv6."""

_FIRST_UNPRIVILEGED_PORT = 1024


class DataAddressRefused(ValueError):
    """The PORT/EPRT argument is refused; ``code`` and ``text`` are the reply."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


def _checked(address: str, port: int, peer: str) -> tuple[str, int]:
    """(address, port) if it is the peer's own address at an unprivileged port."""
    try:
        named = ipaddress.ip_address(address)
        own = ipaddress.ip_address(peer.partition("%")[0])
    except ValueError as exc:
        raise DataAddressRefused("501", "syntax error in the data address") from exc
    if isinstance(own, ipaddress.IPv6Address) and own.ipv4_mapped is not None:
        own = own.ipv4_mapped  # an IPv4 client on a dual-stack socket
    if named != own:
        raise DataAddressRefused(
            "501", "data connections go only to the address this connection comes from"
        )
    if not _FIRST_UNPRIVILEGED_PORT <= port <= 65535:
        raise DataAddressRefused("501", "refusing a data connection to a privileged port")
    return str(named), port


def port_address(argument: str, peer: str) -> tuple[str, int]:
    """The (host, port) of a PORT argument ``h1,h2,h3,h4,p1,p2``, checked against ``peer``."""
    fields = argument.strip().split(",")
    if len(fields) != 6 or not all(f.strip().isdigit() and len(f.strip()) <= 3 for f in fields):
        raise DataAddressRefused("501", "syntax error in PORT (wants h1,h2,h3,h4,p1,p2)")
    numbers = [int(f) for f in fields]
    if any(n > 255 for n in numbers):
        raise DataAddressRefused("501", "syntax error in PORT (each number is 0-255)")
    host = ".".join(str(n) for n in numbers[:4])
    return _checked(host, numbers[4] * 256 + numbers[5], peer)


def eprt_address(argument: str, peer: str) -> tuple[str, int]:
    """The (host, port) of an EPRT argument ``|proto|address|port|``, checked against ``peer``.

    The first character is the delimiter (RFC 2428 suggests ``|``); an unknown
    network protocol is ``522`` naming the ones supported, as the RFC asks.
    """
    text = argument.strip()
    if len(text) < 2 or not 33 <= ord(text[0]) <= 126:
        raise DataAddressRefused("501", "syntax error in EPRT (wants |proto|address|port|)")
    fields = text[1:].split(text[0])
    if len(fields) != 4 or fields[3] != "":
        raise DataAddressRefused("501", "syntax error in EPRT (wants |proto|address|port|)")
    protocol, address, port = fields[:3]
    version = _EPRT_PROTOCOLS.get(protocol)
    if version is None:
        raise DataAddressRefused("522", "network protocol not supported, use (1,2)")
    if not port.isdigit() or len(port) > 5:
        raise DataAddressRefused("501", "syntax error in EPRT (the port is a number)")
    try:
        named = ipaddress.ip_address(address)
    except ValueError as exc:
        raise DataAddressRefused("501", "syntax error in EPRT (not an IP address)") from exc
    if named.version != version:
        raise DataAddressRefused("501", "syntax error in EPRT (address and protocol differ)")
    return _checked(address, int(port), peer)


def logged_in(connection: Connection) -> bool:
    """True if the session has logged in; else False, having replied ``530``."""
    if connection.future.logged.done():
        return True
    connection.response("530", "not logged in")
    return False


def same_host(one: str, other: str) -> bool:
    """True if two textual IP addresses name the same host (IPv4-mapped IPv6 unwrapped)."""

    def parsed(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            address = ipaddress.ip_address(text.partition("%")[0])
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return address.ipv4_mapped
        return address

    return parsed(one) is not None and parsed(one) == parsed(other)


_TLS_READ = 65536
"""Bytes of ciphertext read from the socket at a time while TLS wants more."""

_TLS_HANDSHAKE_TIMEOUT = 30.0
"""Seconds a data connection's TLS handshake may take (unless ``socket_timeout`` says)."""


class DataStream(ThrottleStreamIO):
    """A data connection's stream: writing to one the client has closed is a ConnectionError.

    uvloop raises ``RuntimeError`` ("the handler is closed") for a write to a closed
    transport, where asyncio drops the bytes; either way the transfer is over, and
    the session replies ``426`` for a ConnectionError.

    With ``tls`` the stream runs TLS itself, as the server side, over the plain
    connection (:class:`ssl.SSLObject` on memory buffers), with the handshake when
    its first byte moves, or as it closes unused: an FTPS client starts its handshake
    on an active data connection only after the transfer command's ``150``, long
    after PORT connected it, and the loop's TLS would start at once.  The same code
    then runs on asyncio's loop and on uvloop, for passive connections too, and
    says what the end of the data is: the client's close_notify, or (as ssl sockets
    take it by default) a TCP close without one.
    """

    def __init__(self, *args: Any, tls: ssl.SSLContext | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._context = tls
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls: ssl.SSLObject | None = None

    async def _send_pending(self) -> None:
        """Put what TLS has to send (handshake, records, alerts) on the wire."""
        pending = self._outgoing.read()
        if pending:
            await self._send(pending)

    async def _receive(self) -> bool:
        """Feed ciphertext from the socket to TLS; False at the end of the stream."""
        data = await super().read(_TLS_READ)
        if data:
            self._incoming.write(data)
            return True
        self._incoming.write_eof()
        return False

    async def _handshake(self) -> ssl.SSLObject | None:
        """The TLS object once its handshake is done (None for a plain stream)."""
        if self._context is None or self._tls is not None:
            return self._tls
        tls = self._context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        async with asyncio.timeout(self.write_timeout or _TLS_HANDSHAKE_TIMEOUT):
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    await self._send_pending()
                    if not await self._receive():
                        raise ConnectionResetError(
                            "the client left during the TLS handshake"
                        ) from None
            await self._send_pending()
        self._tls = tls
        return tls

    async def read(self, count: int = -1) -> bytes:
        """Up to ``count`` bytes (decrypted with TLS); b"" at the end of the data."""
        tls = await self._handshake()
        if tls is None:
            return await super().read(count)
        while True:
            try:
                data = tls.read(count if count > 0 else _TLS_READ)
            except ssl.SSLWantReadError:
                await self._send_pending()  # a key update may want an answer
                if not await self._receive():
                    continue  # the next read sees the end (close_notify or not)
            except ssl.SSLZeroReturnError:
                return b""  # close_notify: everything the client sent has come
            except ssl.SSLEOFError:
                # TCP closed without close_notify, as ftplib and curl never do but
                # some clients might: taken as the end, as ssl sockets take it by
                # default (suppress_ragged_eofs).
                return b""
            else:
                return data

    async def write(self, data: bytes) -> None:
        """Write (encrypted with TLS) under the throttles and ``write_timeout``."""
        tls = await self._handshake()
        if tls is None:
            await self._send(data)
        else:
            tls.write(data)
            await self._send_pending()

    async def _send(self, data: bytes) -> None:
        """Bytes on the wire, under the throttles and ``write_timeout``, as aioftp's stream."""
        await self.wait("write")
        if self.writer.is_closing():
            raise ConnectionResetError("the client closed the data connection")
        start = asyncio.get_running_loop().time()  # the clock aioftp's throttles keep
        async with asyncio.timeout(self.write_timeout):
            self.writer.write(data)
            await self.writer.drain()
        self.append("write", data, start)

    async def __aexit__(self, *args: object) -> None:
        """Close: TLS first completes a handshake still due and sends close_notify."""
        try:
            tls = await self._handshake()
            if tls is not None:
                # unwrap() queues close_notify; the client's own is not awaited.  A
                # client that closed first (curl does, as soon as its upload is sent)
                # cannot take it: the transfer is complete all the same.
                with contextlib.suppress(ssl.SSLWantReadError):
                    tls.unwrap()
                with contextlib.suppress(OSError, TimeoutError):
                    await self._send_pending()
        finally:
            self.close()


class _ActiveMode:
    """Stands where aioftp expects a passive listener once PORT/EPRT has connected.

    aioftp's transfer commands wait for a "passive_server" before they start; in
    active mode there is none to close, and none to reuse.
    """

    sockets: tuple[socket.socket, ...] = ()

    def close(self) -> None:
        """Nothing to close: the data connection itself is closed by the session."""


_Accept = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class DataConnections(SessionLoop):
    """PASV, EPSV, PORT and EPRT; ``EPSV ALL`` refuses the other three from then on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands_mapping.update(port=self.port, eprt=self.eprt)

    def data_stream(
        self,
        connection: Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tls: ssl.SSLContext | None = None,
    ) -> DataStream:
        """A data connection's stream, under the session's throttles and socket timeout."""
        return DataStream(
            reader,
            writer,
            throttles=connection.command_connection.throttles,
            timeout=connection.socket_timeout,
            tls=tls,
        )

    @staticmethod
    def _drop_unused(connection: Connection) -> None:
        """Close a data connection that no transfer has taken yet."""
        if connection.future.data_connection.done():
            connection.data_connection.close()
            del connection.data_connection

    def _drop_listener(self, connection: Connection) -> None:
        """Close the passive listener (or forget active mode) before another mode."""
        if connection.future.passive_server.done():
            listener = connection.passive_server
            listener.close()
            if not isinstance(listener, _ActiveMode) and self.available_data_ports is not None:
                self.available_data_ports.put_nowait((0, connection.passive_server_port))
            del connection.passive_server

    def data_tls(self, connection: Connection) -> ssl.SSLContext | None:
        """The TLS context for this session's next data connection (None: in the clear).

        Here the server-wide one (``ssl=``: implicit FTPS); explicit FTPS says per
        session (PROT P).
        """
        return self.ssl

    def data_refused(self, connection: Connection) -> bool:
        """True (having replied) if the session may not open a data connection now."""
        return False

    async def _listen(self, connection: Connection, accepted: _Accept) -> asyncio.Server:
        """A listener on the control connection's local address (from ``data_ports`` if set)."""
        host = connection.server_host
        if self.available_data_ports is None:
            return await asyncio.start_server(accepted, host, 0)
        tried: set[int] = set()
        while True:
            try:
                priority, port = self.available_data_ports.get_nowait()
            except asyncio.QueueEmpty:
                raise aioftp.NoAvailablePort from None
            if port in tried:
                self.available_data_ports.put_nowait((priority, port))
                raise aioftp.NoAvailablePort
            tried.add(port)
            try:
                listener = await asyncio.start_server(accepted, host, port)
            except OSError:
                self.available_data_ports.put_nowait((priority + 1, port))
                continue
            connection.passive_server_port = port
            return listener

    async def _passive(self, connection: Connection) -> tuple[str, int] | None:
        """Listen (or reuse this session's listener); its (host, port), None if no port."""

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = (writer.get_extra_info("peername") or ("", 0))[0]
            if not same_host(peer, connection.client_host):
                logger.info("ftp: data connection from %s refused (not the client)", peer)
                writer.close()
            elif connection.future.data_connection.done():
                writer.close()  # one data connection per transfer
            else:
                tls = self.data_tls(connection)
                connection.data_connection = self.data_stream(connection, reader, writer, tls)

        # A listener is reused for the session's next transfers (TLS or not is
        # decided for each connection it accepts), unless active mode replaced it.
        if connection.future.passive_server.done() and isinstance(
            connection.passive_server, _ActiveMode
        ):
            self._drop_listener(connection)
        if not connection.future.passive_server.done():
            try:
                connection.passive_server = await self._listen(connection, accepted)
            except aioftp.NoAvailablePort:
                connection.response("421", "no free data port")
                return None
        self._drop_unused(connection)
        host, port = connection.passive_server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    def _refused_after_epsv_all(self, connection: Connection, verb: str) -> bool:
        """True (having replied) if the client said EPSV ALL: only EPSV from then on."""
        if "epsv_all" in connection:
            connection.response("503", f"{verb} refused after EPSV ALL")
            return True
        return False

    async def take_data_connection(self, connection: Connection) -> DataStream | None:
        """The data connection for a transfer (waiting ``wait_future_timeout`` for it).

        None, having replied ``425``, when none came; a transfer takes it, so the
        next transfer needs another.
        """
        try:
            async with asyncio.timeout(connection.wait_future_timeout):
                await asyncio.shield(connection.future.data_connection)
        except TimeoutError:
            connection.response("425", "no data connection")
            return None
        stream: DataStream = connection.data_connection
        del connection.data_connection
        return stream

    async def pasv(self, connection: Connection, rest: str | PurePosixPath) -> bool:
        """PASV: listen, and name the address in the RFC 959 form."""
        if not logged_in(connection) or self._refused_after_epsv_all(connection, "PASV"):
            return True
        if self.data_refused(connection):
            return True
        if ":" in connection.server_host and not connection.server_host.startswith("::ffff:"):
            connection.response("501", "PASV is for IPv4: use EPSV")
            return True
        address = await self._passive(connection)
        if address is None:
            return True
        host = self.ipv4_pasv_forced_response_address or address[0].removeprefix("::ffff:")
        port = address[1]
        numbers = [*host.split("."), str(port >> 8), str(port & 0xFF)]
        connection.response("227", f"entering passive mode ({','.join(numbers)})")
        return True

    async def epsv(self, connection: Connection, rest: str | PurePosixPath) -> bool:
        """EPSV (RFC 2428): listen and name the port; ``EPSV ALL`` keeps to EPSV."""
        if not logged_in(connection):
            return True
        argument = str(rest).strip().upper()
        if argument != "ALL" and self.data_refused(connection):
            return True
        if argument == "ALL":
            connection.epsv_all = True
            connection.response("200", "EPSV ALL: only EPSV from now on")
            return True
        family = "2" if ":" in connection.server_host else "1"
        if argument and argument != family:
            connection.response("522", f"network protocol not supported, use ({family})")
            return True
        address = await self._passive(connection)
        if address is not None:
            connection.response("229", f"entering extended passive mode (|||{address[1]}|)")
        return True

    async def port(self, connection: Connection, rest: str) -> bool:
        """PORT h1,h2,h3,h4,p1,p2: connect to the client (its own address only)."""
        return await self._active(connection, "PORT", rest, port_address)

    async def eprt(self, connection: Connection, rest: str) -> bool:
        """EPRT |proto|address|port| (RFC 2428): connect to the client (its own address only)."""
        return await self._active(connection, "EPRT", rest, eprt_address)

    async def _active(
        self,
        connection: Connection,
        verb: str,
        rest: str,
        parse: Callable[[str, str], tuple[str, int]],
    ) -> bool:
        if not logged_in(connection) or self._refused_after_epsv_all(connection, verb):
            return True
        if self.data_refused(connection):
            return True
        try:
            host, port = parse(rest, connection.client_host)
        except DataAddressRefused as refused:
            if refused.code == "501" and "address this connection" in refused.text:
                logger.info("ftp %s: %s to another host refused", connection.client_host, verb)
            connection.response(refused.code, refused.text)
            return True
        self._drop_listener(connection)
        self._drop_unused(connection)
        try:
            async with asyncio.timeout(connection.socket_timeout or _ACTIVE_CONNECT_TIMEOUT):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            logger.debug("ftp %s: %s connection failed: %s", connection.client_host, verb, exc)
            connection.response("425", "cannot open the data connection")
            return True
        connection.passive_server = _ActiveMode()
        tls = self.data_tls(connection)
        connection.data_connection = self.data_stream(connection, reader, writer, tls)
        connection.response("200", f"{verb} command successful: connected")
        return True
