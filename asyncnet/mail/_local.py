"""The local mail pair: SMTP in (aiosmtpd), Maildirs on disk, POP3 out (ours), one loop.

Something to send mail to and read it back from, inside your own program or test,
instead of a separate Mailpit or MailHog::

    async with LocalMailServer(users={"alice": "wonderland"}) as mail:
        refused = await send_message(sender="bob@localhost",
                                     recipients=["alice@localhost", "nobody@localhost"],
                                     subject="hi", body="hello",
                                     port=mail.smtp_address[1])
        # {"nobody@localhost": (550, "5.1.1 <nobody@localhost>: no such user here")}
        async with POP3Client(*mail.pop3_address) as pop:
            await pop.login("alice", "wonderland")
            ...

Both servers listen on 127.0.0.1 (port 0 by default: read the ports back from
``smtp_address``/``pop3_address``).  A recipient is a user when its local part
(before ``@``, any domain) is one of ``users``; any other is refused with 550, so
partial and total refusals are easy to provoke.  Messages are stored exactly as
received (no headers added).  Without ``root`` the Maildirs live in a temporary
directory removed on :meth:`close`.  ``on_delivery`` is called for each stored copy.

``deliveries`` keeps the last ``max_deliveries`` (1000) copies' metadata, never their
bytes: :attr:`Delivery.data` reads the message back from the Maildir, so a server
that runs for days holds no more than it did on the first message.
``delivery_count`` counts every copy.

aiosmtpd's ``Controller`` runs a thread with a loop of its own; here the aiosmtpd
protocol is served by ``loop.create_server`` on *your* loop, beside the POP3 server.
It is aiosmtpd's protocol with two bounds of asyncnet's
(:class:`~asyncnet.mail._smtpd.BoundedSMTP`): DATA held within ``data_size_limit``
(32 MiB) whatever a client sends (``552`` beyond; aiosmtpd alone keeps every piece of
a line that never ends), and at most ``max_recipients`` (100) RCPTs per message
(``452 4.5.3 Too many recipients`` beyond).  DATA is never held whole: it is written
to the first recipient's Maildir ``tmp`` 64 KiB at a time as it arrives, and on the
final dot flushed to disk and linked into each recipient's ``new`` (one file on disk
however many recipients), so the server's memory does not grow with the message.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from aiosmtpd.smtp import SMTP as AioSMTP
from aiosmtpd.smtp import Envelope, Session

from .._lifecycle import Endpoint
from ..errors import ConfigurationError, StateError
from ._maildir import Maildirs, MaildirWriter
from ._pop3.server import PasswordAuthenticator, POP3Server
from ._smtpd import DEFAULT_MAX_RECIPIENTS, BoundedSMTP

__all__ = ["Delivery", "LocalMailServer", "local_mail_server"]

logger = logging.getLogger("asyncnet.mail")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message stored in one user's Maildir (its metadata; the bytes stay on disk)."""

    user: str
    key: str
    """The message's key in the user's Maildir (its POP3 unique-id)."""
    sender: str
    size: int
    """Octets received (what :attr:`data` holds while the message is in the Maildir)."""
    peer: Any = None
    """The SMTP client's address, ``(host, port)``: one connection, one port."""
    maildirs: Maildirs | None = field(default=None, repr=False, compare=False)

    @property
    def data(self) -> bytes:
        """The message as received (CRLF), read from the Maildir now.

        Raises ``KeyError`` once it has left the Maildir (deleted over POP3, or a
        temporary root removed when the server closed).
        """
        if self.maildirs is None:
            raise KeyError(self.key)
        try:
            return self.maildirs.read(self.user, self.key)
        except FileNotFoundError as exc:  # the whole Maildir is gone
            raise KeyError(self.key) from exc


class _DeliveryHandler:
    """aiosmtpd handler: accept local users' addresses, store DATA in their Maildirs."""

    def __init__(self, owner: LocalMailServer) -> None:
        self.owner = owner

    async def handle_RCPT(
        self,
        server: AioSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.owner.user_for(address) is None:
            return f"550 5.1.1 <{address}>: no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def begin_DATA(self, server: AioSMTP, session: Session, envelope: Envelope) -> _Sink:
        """Stream the message into the recipients' Maildirs as it arrives (see BoundedSMTP)."""
        users = sorted({u for a in envelope.rcpt_tos if (u := self.owner.user_for(a)) is not None})
        writer = await self.owner.maildirs.writer(users)
        return _Sink(self.owner, writer, envelope.mail_from or "", session.peer)


class _Sink:
    """One message on its way into the Maildirs: written to ``tmp`` in chunks, then
    linked into each user's ``new`` on the final dot (a DataSink for BoundedSMTP)."""

    def __init__(self, owner: LocalMailServer, writer: MaildirWriter, sender: str, peer: Any):
        self.owner, self.writer, self.sender, self.peer = owner, writer, sender, peer

    async def write(self, data: bytes) -> None:
        await self.writer.write(data)

    async def commit(self) -> str:
        writer = self.writer
        try:
            keys = await writer.commit()
        except OSError as exc:
            logger.error("delivery failed: %s", exc)
            return "451 4.3.0 local delivery failed, try again later"
        maildirs = self.owner.maildirs
        for user, key in keys.items():
            self.owner._delivered(
                Delivery(user, key, self.sender, writer.size, self.peer, maildirs)
            )
        return f"250 OK delivered to {len(keys)} mailbox(es)"

    def abort(self) -> None:
        self.writer.abort()


class LocalMailServer(Endpoint):
    """aiosmtpd SMTP delivering into per-user Maildirs, plus our POP3 server on them."""

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        root: str | Path | None = None,
        host: str = "127.0.0.1",
        smtp_port: int = 0,
        pop3_port: int = 0,
        on_delivery: Callable[[Delivery], object] | None = None,
        failed_login_delay: float = 0.5,
        data_size_limit: int = 32 * 1024 * 1024,
        max_recipients: int = DEFAULT_MAX_RECIPIENTS,
        max_deliveries: int = 1000,
        **pop3_options: Any,
    ) -> None:
        self.users = dict(users if users is not None else {"demo": "demo"})
        if not self.users:
            raise ConfigurationError("users must name at least one mailbox")
        self._own_root = root is None
        self.root = Path(root) if root is not None else None
        self.host = host
        self.smtp_port = smtp_port
        self.pop3_port = pop3_port
        self.on_delivery = on_delivery
        self.failed_login_delay = failed_login_delay
        if data_size_limit < 1 or max_recipients < 1 or max_deliveries < 0:
            raise ConfigurationError(
                "data_size_limit and max_recipients must be at least 1, max_deliveries at least 0"
            )
        self.data_size_limit = data_size_limit
        self.max_recipients = max_recipients
        self.pop3_options = pop3_options
        self.deliveries: collections.deque[Delivery] = collections.deque(maxlen=max_deliveries)
        """The last ``max_deliveries`` copies stored, oldest first (metadata only)."""
        self.delivery_count = 0
        """Copies stored since the server started (``deliveries`` keeps only the last)."""
        self._arrived = asyncio.Event()
        self._smtp: asyncio.Server | None = None
        self._smtp_connections: set[AioSMTP] = set()
        self._pop3: POP3Server | None = None
        self.maildirs: Maildirs

    def user_for(self, address: str) -> str | None:
        """The local user an address delivers to (its local part), or ``None``."""
        local = address.strip().strip("<>").rpartition("@")[0] or address.strip("<>")
        return local if local in self.users else None

    def _delivered(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        self.delivery_count += 1
        if self.on_delivery is not None:
            try:
                self.on_delivery(delivery)
            except Exception:
                logger.exception("on_delivery callback failed")
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()

    async def wait_for_deliveries(self, count: int, timeout: float | None = 10.0) -> None:
        """Wait until at least ``count`` copies have been stored (no polling)."""
        async with asyncio.timeout(timeout):
            while self.delivery_count < count:
                await self._arrived.wait()

    @property
    def smtp_address(self) -> tuple[str, int]:
        """Where the SMTP server listens, ``(host, port)``."""
        if self._smtp is None:
            raise StateError("the local mail server is not started")
        host, port = self._smtp.sockets[0].getsockname()[:2]
        return host, port

    @property
    def pop3_address(self) -> tuple[str, int]:
        """Where the POP3 server listens, ``(host, port)``."""
        if self._pop3 is None:
            raise StateError("the local mail server is not started")
        host, port = self._pop3.address[:2]
        return host, port

    @property
    def pop3(self) -> POP3Server:
        """The POP3 server (for its stats, or to change its options)."""
        if self._pop3 is None:
            raise StateError("the local mail server is not started")
        return self._pop3

    async def start(self) -> Self:
        """Create the Maildirs and start both servers."""
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="asyncnet-mail-"))
        self.maildirs = Maildirs(self.root, list(self.users))
        loop = asyncio.get_running_loop()
        handler = _DeliveryHandler(self)
        self._pop3 = POP3Server(
            self.maildirs,
            PasswordAuthenticator(self.users),
            host=self.host,
            port=self.pop3_port,
            failed_login_delay=self.failed_login_delay,
            **self.pop3_options,
        )
        try:
            await self._pop3.start()
            self._smtp = await loop.create_server(
                lambda: BoundedSMTP(
                    handler,
                    self._smtp_connections,
                    hostname="localhost",  # aiosmtpd would ask DNS (getfqdn) otherwise
                    data_size_limit=self.data_size_limit,
                    max_recipients=self.max_recipients,
                    loop=loop,
                ),
                self.host,
                self.smtp_port,
            )
        except BaseException:
            await self.stop()
            raise
        return self

    def close(self, grace: float | None = None) -> None:
        """Begin closing both servers and every connection (``grace`` bounds POP3 sessions)."""
        if self._pop3 is not None:
            self._pop3.close(grace)
        if self._smtp is not None:
            self._smtp.close()
        for protocol in list(self._smtp_connections):
            if protocol.transport is not None:
                protocol.transport.close()

    async def wait_closed(self) -> None:
        """Wait until both servers are closed; remove a temporary root."""
        if self._smtp is not None:
            await self._smtp.wait_closed()
        if self._pop3 is not None:
            await self._pop3.wait_closed()
        if self._own_root and self.root is not None:
            await asyncio.to_thread(shutil.rmtree, self.root, True)

    async def serve_forever(self) -> None:
        """Run until cancelled (``asyncnet.run_servers`` accepts this object)."""
        if self._smtp is None:
            await self.start()
        await asyncio.Event().wait()


@contextlib.asynccontextmanager
async def local_mail_server(
    users: Mapping[str, str] | None = None, **options: Any
) -> AsyncIterator[LocalMailServer]:
    """The local pair for a test: ``async with local_mail_server() as mail:`` (fixture-friendly)."""
    async with LocalMailServer(users, **options) as server:
        yield server
