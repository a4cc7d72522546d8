"""Outgoing mail over SMTP (aiosmtplib), for every service that mails (auth's codes and
notices, notifications' messages): plain-text bodies, and no digits in the headers a service
adds, so a 6-digit code is the only 6-digit number of its mail (people and tests find it)."""

from __future__ import annotations

import logging
import secrets
import string
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

log = logging.getLogger("parley.mail")


def _message_id() -> str:
    letters = "".join(secrets.choice(string.ascii_lowercase) for _ in range(24))
    return f"<{letters}@parley.invalid>"


def plain_message(sender: str, to: str, subject: str) -> EmailMessage:
    """A message with its headers set; the caller sets the content."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = _message_id()
    return message


class Mailer:
    """SMTP client. Senders that must not reveal by their timing whether a mail went out send
    from background tasks."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(message, hostname=self.host, port=self.port, timeout=self.timeout)

    async def send_quietly(self, message: EmailMessage) -> None:
        """Send; a failure is logged (subject only: the address is personal data), not raised."""
        try:
            await self.send(message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            log.exception("mail not sent: %s", message["Subject"])
