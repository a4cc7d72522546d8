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


def verification_mail(sender: str, to: str, code: str, ttl_minutes: int) -> EmailMessage:
    """The registration's code mail (a registration-saga step). The code is the only 6-digit
    number in the whole mail, headers included, so people and tests can find it."""
    message = _base(sender, to, "Your Parley verification code")
    message.set_content(
        f"Hello,\n\nYour code to verify your email address is:\n\n    {code}\n\n"
        f"It is valid for {ttl_minutes} minutes and can be used once. If you did not ask for "
        "it, ignore this mail.\n\n-- Parley\n"
    )
    return message


def registration_failed_mail(sender: str, to: str) -> EmailMessage:
    """The registration saga compensated after the code mail went out: say so, so the code in
    the earlier mail is not a mystery (it no longer works)."""
    message = _base(sender, to, "Your Parley registration could not be completed")
    message.set_content(
        "Hello,\n\nWe could not complete your Parley registration, so the code we mailed you "
        "earlier no longer works and this address is free again. Please register once more; "
        "if it keeps failing, contact support.\n\n-- Parley\n"
    )
    return message


def _base(sender: str, to: str, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = _message_id()
    return message
