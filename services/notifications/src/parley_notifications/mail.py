"""Outgoing mail over SMTP (aiosmtplib), the same small pattern as the auth service's mailer
(services never import each other; the shared part is three lines). Plain-text bodies."""

from __future__ import annotations

import secrets
import string
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib


def _message_id() -> str:
    letters = "".join(secrets.choice(string.ascii_lowercase) for _ in range(24))
    return f"<{letters}@parley.invalid>"


def message_mail(sender: str, to: str, notification_id: str, preview: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = "New message on Parley"
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = _message_id()
    # lets a reader (and a test) tell which notification a mail belongs to
    message["X-Parley-Notification"] = notification_id
    message.set_content(
        f"Hello,\n\nYou have a new message:\n\n    {preview}\n\n"
        "Open Parley to read and answer it. You get these mails because you turned on email "
        "notifications; turn them off in your notification preferences.\n\n-- Parley\n"
    )
    return message


class Mailer:
    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(message, hostname=self.host, port=self.port, timeout=self.timeout)
