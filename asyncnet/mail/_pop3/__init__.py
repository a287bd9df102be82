"""POP3: a sans-IO client protocol, an asyncio client, and a server serving Maildirs."""

from .client import POP3_AUTH_METHODS, POP3AuthMethod, POP3Client
from .server import Authenticator, PasswordAuthenticator, POP3Server, POP3Session

__all__ = [
    "POP3_AUTH_METHODS",
    "Authenticator",
    "POP3AuthMethod",
    "POP3Client",
    "POP3Server",
    "POP3Session",
    "PasswordAuthenticator",
]
