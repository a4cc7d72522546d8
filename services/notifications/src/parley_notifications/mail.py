"""The notifications service's mails, sent by the kit's Mailer (parley_commandkit.mail, shared
with the auth service). Plain-text bodies."""

from __future__ import annotations

from email.message import EmailMessage

from parley_commandkit.mail import Mailer, plain_message

__all__ = ["Mailer", "message_mail", "registration_failed_mail", "verification_mail"]


def message_mail(sender: str, to: str, notification_id: str, preview: str) -> EmailMessage:
    message = plain_message(sender, to, "New message on Parley")
    # lets a reader (and a test) tell which notification a mail belongs to
    message["X-Parley-Notification"] = notification_id
    message.set_content(
        f"Hello,\n\nYou have a new message:\n\n    {preview}\n\n"
        "Open Parley to read and answer it. You get these mails because you turned on email "
        "notifications; turn them off in your notification preferences.\n\n-- Parley\n"
    )
    return message


def verification_mail(sender: str, to: str, code: str, ttl_minutes: int) -> EmailMessage:
    """The registration's code mail (a registration-saga step). The code is the only 6-digit
    number in the whole mail, headers included, so people and tests can find it."""
    message = plain_message(sender, to, "Your Parley verification code")
    message.set_content(
        f"Hello,\n\nYour code to verify your email address is:\n\n    {code}\n\n"
        f"It is valid for {ttl_minutes} minutes and can be used once. If you did not ask for "
        "it, ignore this mail.\n\n-- Parley\n"
    )
    return message


def registration_failed_mail(sender: str, to: str) -> EmailMessage:
    """The registration saga compensated after the code mail went out: say so, so the code in
    the earlier mail is not a mystery (it no longer works)."""
    message = plain_message(sender, to, "Your Parley registration could not be completed")
    message.set_content(
        "Hello,\n\nWe could not complete your Parley registration, so the code we mailed you "
        "earlier no longer works and this address is free again. Please register once more; "
        "if it keeps failing, contact support.\n\n-- Parley\n"
    )
    return message
