"""Outgoing mail over SMTP (aiosmtplib). Bodies are plain text; a mail with a code contains no
other 6-digit number (no Message-ID digits, no ids), so people and tests can find it."""

from __future__ import annotations

import logging
import secrets
import string
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

log = logging.getLogger("parley.auth.mail")

SUBJECTS = {
    "verify_email": "Your Parley verification code",
    "password_reset": "Your Parley password reset code",
    "change_email": "Confirm your new Parley email address",
}
PURPOSE_TEXT = {
    "verify_email": "to verify your email address",
    "password_reset": "to choose a new password",
    "change_email": "to confirm this new email address",
}


def _message_id() -> str:
    letters = "".join(secrets.choice(string.ascii_lowercase) for _ in range(24))
    return f"<{letters}@parley.invalid>"


def code_message(sender: str, to: str, purpose: str, code: str, ttl_minutes: int) -> EmailMessage:
    message = _base(sender, to, SUBJECTS[purpose])
    message.set_content(
        f"Hello,\n\nYour code {PURPOSE_TEXT[purpose]} is:\n\n    {code}\n\n"
        f"It is valid for {ttl_minutes} minutes and can be used once. If you did not ask for "
        "it, ignore this mail.\n\n-- Parley\n"
    )
    return message


def notice_message(sender: str, to: str, kind: str) -> EmailMessage:
    """A mail without code: someone used an address that already has an account."""
    if kind == "already_registered":
        subject = "Someone tried to register with your address"
        text = (
            "Someone tried to create a Parley account with this email address, which already "
            "has one. If it was you, log in instead, or reset your password if you forgot it "
            "(a reset also verifies an account that was never verified). Otherwise ignore this "
            "mail: nothing changed."
        )
    else:
        subject = "Someone tried to move their Parley account to your address"
        text = (
            "Someone asked to change the email address of their Parley account to this "
            "address, which already belongs to an account. Nothing changed."
        )
    message = _base(sender, to, subject)
    message.set_content(f"Hello,\n\n{text}\n\n-- Parley\n")
    return message


def _base(sender: str, to: str, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = _message_id()
    return message


class Mailer:
    """SMTP client. Handlers send from background tasks (`Background.spawn`): a request's
    duration must not tell whether a mail was sent, nor wait on the SMTP server."""

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
