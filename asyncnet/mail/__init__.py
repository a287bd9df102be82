"""Mail: sending over SMTP (aiosmtplib), reading over POP3 (ours), and a local mail pair.

* :mod:`asyncnet.mail.smtp` -- :func:`send_message` with ``smtplib.sendmail``'s
  refused-recipients contract;
* :mod:`asyncnet.mail.pop3` -- a sans-IO POP3 client protocol, an asyncio client and
  a POP3 server serving Maildirs;
* :mod:`asyncnet.mail.store` -- fetching into a local Maildir that never loses or
  duplicates a message;
* :mod:`asyncnet.mail.local` -- the local mail pair (aiosmtpd + our POP3 server).
"""

from .errors import (
    MailError,
    MessageNotSent,
    POP3ConnectionError,
    POP3ProtocolError,
    POP3ReplyError,
    RecipientsRefused,
    TLSRequired,
)
from .local import LocalMailServer, local_mail_server
from .maildir import Maildirs
from .pop3 import PasswordAuthenticator, POP3Client, POP3Server
from .smtp import SMTPClient, make_message, send_message
from .store import FetchReport, FetchStore, fetch_all

__all__ = [
    "FetchReport",
    "FetchStore",
    "LocalMailServer",
    "MailError",
    "Maildirs",
    "MessageNotSent",
    "POP3Client",
    "POP3ConnectionError",
    "POP3ProtocolError",
    "POP3ReplyError",
    "POP3Server",
    "PasswordAuthenticator",
    "RecipientsRefused",
    "SMTPClient",
    "TLSRequired",
    "fetch_all",
    "local_mail_server",
    "make_message",
    "send_message",
]
