"""Twisted's POP3 server (twisted.mail.pop3) on 127.0.0.1:0 serving one Maildir, for interop.

    python tests/twisted_pop3_server.py MAILDIR CERT KEY   # prints "port N"; user alice, secret

Two additions, both small: twisted.mail.pop3.POP3 has no STLS command, so the
subclass below adds it with Twisted's own ``transport.startTLS`` (RFC 2595: reply
+OK, then the handshake); and BinaryMaildirMailbox works around two Python 3 slips
of Twisted's MaildirMailbox.
"""

from __future__ import annotations

import os
import sys

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import IRealm, Portal
from twisted.internet import protocol, reactor, ssl
from twisted.mail import maildir, pop3
from zope.interface import implementer


class BinaryMaildirMailbox(maildir.MaildirMailbox):
    """Two Python 3 bytes/str slips of Twisted 26.10's MaildirMailbox, patched here:
    getMessage() opens files in text mode (RETR's bytes transform then fails silently
    and the reply stalls after +OK), and deleteMessage() joins a bytes path with str
    names (DELE raises TypeError and the connection drops) and expects a .Trash folder."""

    def getMessage(self, i):  # type: ignore[no-untyped-def]
        return open(self.list[i], "rb")

    def deleteMessage(self, i):  # type: ignore[no-untyped-def]
        name = self.list[i]
        os.makedirs(os.path.join(self.path, b".Trash", b"cur"), exist_ok=True)
        trash = os.path.join(self.path, b".Trash", b"cur", os.path.basename(name))
        os.rename(name, trash)
        self.deleted[name] = trash
        self.list[i] = 0


@implementer(IRealm)
class Realm:
    def __init__(self, path: str) -> None:
        self.path = path

    def requestAvatar(self, avatar_id, mind, *interfaces):  # type: ignore[no-untyped-def]
        box = BinaryMaildirMailbox(self.path.encode())
        return pop3.IMailbox, box, lambda: None


class TLSPOP3(pop3.POP3):
    AUTH_CMDS = [*pop3.POP3.AUTH_CMDS, b"STLS"]  # allowed before login
    tls_options: ssl.CertificateOptions | None = None
    tls_active = False

    def listCapabilities(self):  # type: ignore[no-untyped-def]
        caps = super().listCapabilities()
        return caps if self.tls_active else [*caps, b"STLS"]

    def do_STLS(self) -> None:
        if self.tls_active:
            self.failResponse(b"already using TLS")
            return
        self.successResponse(b"Begin TLS negotiation")
        self.transport.startTLS(self.tls_options)
        self.tls_active = True


def main() -> None:
    path, cert, key = sys.argv[1:4]
    with open(cert, "rb") as c, open(key, "rb") as k:
        pem = c.read() + k.read()
    options = ssl.PrivateCertificate.loadPEM(pem).options()
    checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret")
    portal = Portal(Realm(path), [checker])

    class Factory(protocol.ServerFactory):
        def buildProtocol(self, addr):  # type: ignore[no-untyped-def]
            proto = TLSPOP3()
            proto.portal = portal
            proto.factory = self
            proto.tls_options = options
            return proto

    port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
    print(f"port {port.getHost().port}", flush=True)
    if "-v" in sys.argv:
        from twisted.python import log

        log.startLogging(sys.stderr, setStdout=False)
    reactor.run()


if __name__ == "__main__":
    main()
