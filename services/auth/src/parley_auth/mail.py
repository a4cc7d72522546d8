"""The auth service's mails (codes and notices), sent by the kit's Mailer. A mail with a code
contains no other 6-digit number (no Message-ID digits, no ids), so people and tests find it."""

from __future__ import annotations

from email.message import EmailMessage
from urllib.parse import urlencode

from parley_commandkit.mail import Mailer, plain_message

__all__ = ["Mailer", "code_message", "notice_message", "reset_link_message"]

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


def code_message(sender: str, to: str, purpose: str, code: str, ttl_minutes: int) -> EmailMessage:
    message = plain_message(sender, to, SUBJECTS[purpose])
    message.set_content(
        f"Hello,\n\nYour code {PURPOSE_TEXT[purpose]} is:\n\n    {code}\n\n"
        f"It is valid for {ttl_minutes} minutes and can be used once. If you did not ask for "
        "it, ignore this mail.\n\n-- Parley\n"
    )
    return message


def reset_link_message(
    sender: str, to: str, reset_url: str, token: str, ttl_minutes: int
) -> EmailMessage:
    """The password-reset link: the address and the 128-bit token in the URL's fragment (a
    fragment is never sent to a server, so no access log or Referer carries it)."""
    link = f"{reset_url}#{urlencode({'email': to, 'token': token})}"
    message = plain_message(sender, to, "Reset your Parley password")
    message.set_content(
        "Hello,\n\nTo choose a new password, open this link:\n\n"
        f"    {link}\n\n"
        f"It is valid for {ttl_minutes} minutes and can be used once. If you did not ask for "
        "it, ignore this mail: your password is unchanged.\n\n-- Parley\n"
    )
    return message


def notice_message(sender: str, to: str, kind: str) -> EmailMessage:
    """A mail without code: someone used an address that already has an account, or the
    account's address moved away from this one."""
    if kind == "already_registered":
        subject = "Someone tried to register with your address"
        text = (
            "Someone tried to create a Parley account with this email address, which already "
            "has one. If it was you, log in instead, or reset your password if you forgot it "
            "(a reset also verifies an account that was never verified). Otherwise ignore this "
            "mail: nothing changed."
        )
    elif kind == "codes_guessed":
        subject = "Your Parley codes were blocked"
        text = (
            "Someone entered too many wrong codes for this address today, so the codes and "
            "the password-reset link sent to it have been cancelled. If it was you, ask for a "
            "new one tomorrow. If not, someone may be trying to get into your account: your "
            "password is unchanged and still works."
        )
    elif kind == "email_changed":
        subject = "The email address of your Parley account was changed"
        text = (
            "The email address of the Parley account that used this address was just changed "
            "to another one, and its other sessions were signed out. Mails about the account "
            "go to the new address from now on. If you did not make this change, someone else "
            "controls your account: contact Parley support at once."
        )
    else:
        subject = "Someone tried to move their Parley account to your address"
        text = (
            "Someone asked to change the email address of their Parley account to this "
            "address, which already belongs to an account. Nothing changed."
        )
    message = plain_message(sender, to, subject)
    message.set_content(f"Hello,\n\n{text}\n\n-- Parley\n")
    return message
