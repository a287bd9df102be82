"""Mail: sending over SMTP (aiosmtplib), reading over POP3 (ours), and a local mail pair.

* :mod:`asyncnet.mail._smtp` -- :func:`send_message` with ``smtplib.sendmail``'s
  refused-recipients contract;
* :mod:`asyncnet.mail._pop3` -- a sans-IO POP3 client protocol, an asyncio client and
  a POP3 server serving Maildirs;
* :mod:`asyncnet.mail._store` -- fetching into a local Maildir that never loses or
  duplicates a message;
* :mod:`asyncnet.mail._local` -- the local mail pair (aiosmtpd + our POP3 server).
"""

from ._errors import (
    MailConnectionError,
    MailError,
    MailProtocolError,
    MessageNotSent,
    POP3ConnectionError,
    POP3Error,
    POP3ProtocolError,
    POP3ReplyError,
    RecipientsRefused,
    ReplyError,
    SMTPReplyError,
    TLSRequired,
)
from ._local import Delivery, LocalMailServer, local_mail_server
from ._maildir import Maildirs
from ._pop3 import (
    POP3_AUTH_METHODS,
    Authenticator,
    PasswordAuthenticator,
    POP3AuthMethod,
    POP3Client,
    POP3Server,
)
from ._smtp import SMTPClient, TLSMode, make_message, message_envelope, send_message
from ._store import FetchReport, FetchStore, fetch_all

__all__ = [
    "Authenticator",
    "Delivery",
    "MailConnectionError",
    "MailProtocolError",
    "POP3Error",
    "ReplyError",
    "SMTPReplyError",
    "TLSMode",
    "FetchReport",
    "FetchStore",
    "LocalMailServer",
    "MailError",
    "Maildirs",
    "MessageNotSent",
    "POP3_AUTH_METHODS",
    "POP3AuthMethod",
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
    "message_envelope",
    "send_message",
]
