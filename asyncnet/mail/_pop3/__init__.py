"""POP3: a sans-IO client protocol, an asyncio client, and a server serving Maildirs."""

from .client import POP3Client
from .server import Authenticator, PasswordAuthenticator, POP3Server, POP3Session

__all__ = [
    "Authenticator",
    "POP3Client",
    "POP3Server",
    "POP3Session",
    "PasswordAuthenticator",
]
