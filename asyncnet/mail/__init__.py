"""Mail: sending over SMTP (aiosmtplib), reading over POP3 (ours), and a local mail pair.

* :mod:`asyncnet.mail.smtp` -- :func:`send_message` with ``smtplib.sendmail``'s
  refused-recipients contract;
* :mod:`asyncnet.mail.pop3` -- a sans-IO POP3 client protocol, an asyncio client and
  a POP3 server serving Maildirs;
* :mod:`asyncnet.mail.store` -- fetching into a local Maildir that never loses or
  duplicates a message;
* :mod:`asyncnet.mail.local` -- the local mail pair (aiosmtpd + our POP3 server).
"""
