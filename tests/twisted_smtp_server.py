"""Twisted's ESMTP server (twisted.mail.smtp) on 127.0.0.1:0, for interop: STARTTLS, AUTH.

    python tests/twisted_smtp_server.py OUTDIR [--tls CERT KEY] [--mechanisms LOGIN,PLAIN]

Prints "port N" once listening.  One user, alice with password "secret"; a sender
that has not logged in is refused (550, Twisted's "Unauthenticated senders not
allowed"), so a delivered message proves AUTH happened.  Each accepted copy is
written to OUTDIR as ``N.eml`` (the bytes as received, no Received header added) and
``N.json`` (the envelope: ``mail_from``, ``rcpt``, ``user``, ``tls``).  Without
--tls there is no STARTTLS, but AUTH is still offered: Twisted offers it in cleartext.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer, protocol, reactor, ssl
from twisted.mail import imap4, smtp
from zope.interface import implementer

_numbers = itertools.count(1)


@implementer(smtp.IMessage)
class Copy:
    """One recipient's copy, written when the message ends."""

    def __init__(self, delivery: Delivery, rcpt: str) -> None:
        self.delivery = delivery
        self.rcpt = rcpt
        self.lines: list[bytes] = []

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)

    def eomReceived(self) -> defer.Deferred[None]:
        number = next(_numbers)
        outdir = self.delivery.outdir
        (outdir / f"{number}.eml").write_bytes(b"".join(line + b"\r\n" for line in self.lines))
        envelope = {
            "mail_from": self.delivery.origin,
            "rcpt": self.rcpt,
            "user": self.delivery.user,
            "tls": self.delivery.tls,
        }
        (outdir / f"{number}.json").write_text(json.dumps(envelope))
        return defer.succeed(None)

    def connectionLost(self) -> None:
        self.lines.clear()


@implementer(smtp.IMessageDelivery)
class Delivery:
    """The logged-in user's delivery: every recipient accepted."""

    def __init__(self, outdir: Path, user: str) -> None:
        self.outdir = outdir
        self.user = user
        self.origin = ""
        self.tls = False

    def receivedHeader(self, helo, origin, recipients):  # type: ignore[no-untyped-def]
        return None  # the copies stay byte-exact

    def validateFrom(self, helo, origin):  # type: ignore[no-untyped-def]
        self.origin = str(origin)
        return origin

    def validateTo(self, user):  # type: ignore[no-untyped-def]
        rcpt = str(user.dest)
        return lambda: Copy(self, rcpt)


class RecordingESMTP(smtp.ESMTP):
    """ESMTP that tells the logged-in user's delivery whether the session is encrypted."""

    def validateFrom(self, helo, origin):  # type: ignore[no-untyped-def]
        if isinstance(self.delivery, Delivery):
            self.delivery.tls = bool(self.startedTLS)
        return super().validateFrom(helo, origin)


@implementer(IRealm)
class Realm:
    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir

    def requestAvatar(self, avatar_id, mind, *interfaces):  # type: ignore[no-untyped-def]
        if smtp.IMessageDelivery not in interfaces:
            raise NotImplementedError(interfaces)
        user = avatar_id.decode() if isinstance(avatar_id, bytes) else str(avatar_id)
        return smtp.IMessageDelivery, Delivery(self.outdir, user), lambda: None


def main() -> None:
    args = sys.argv[1:]
    outdir = Path(args.pop(0))
    options = None
    if "--tls" in args:
        at = args.index("--tls")
        cert, key = args[at + 1 : at + 3]
        pem = Path(cert).read_bytes() + Path(key).read_bytes()
        options = ssl.PrivateCertificate.loadPEM(pem).options()
    mechanisms = ["LOGIN", "PLAIN"]
    if "--mechanisms" in args:
        mechanisms = args[args.index("--mechanisms") + 1].split(",")
    known = {"LOGIN": smtp.LOGINCredentials, "PLAIN": imap4.PLAINCredentials}
    challengers = {name.encode(): known[name] for name in mechanisms}
    checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
    portal = Portal(Realm(outdir), [checker])

    class Factory(protocol.ServerFactory):
        def buildProtocol(self, addr):  # type: ignore[no-untyped-def]
            proto = RecordingESMTP(challengers, options)
            proto.host = b"localhost"  # Twisted's default asks DNS for our FQDN
            proto.portal = portal
            proto.factory = self
            return proto

    port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
    print(f"port {port.getHost().port}", flush=True)
    if "-v" in args:
        from twisted.python import log

        log.startLogging(sys.stderr, setStdout=False)
    reactor.run()


if __name__ == "__main__":
    main()
