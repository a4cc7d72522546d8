"""Changing what guards an account: password reset, email change, roles, the account's status
(deactivated in the users context), and forgetting the person (crypto-shredding)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from parley_commandkit import Context
from parley_eventstore.records import AppendResult

from parley_auth import mail, tables
from parley_auth.accounts import (
    account_by_code,
    account_of,
    check_code,
    code_guard,
    execute,
    issue_code,
    notify,
)
from parley_auth.core import (
    CHANGE_EMAIL,
    RESET,
    Auth,
    EmailTaken,
    InvalidCode,
    InvalidCredentials,
    NotAuthenticated,
    SameEmail,
    WrongPassword,
)
from parley_auth.domain import Account, AccountNotFound, normalise_email
from parley_auth.sessions import check_password
from parley_auth.tokens import AccessClaims, new_link_token


def request_password_reset(auth: Auth, email: str, ctx: Context) -> None:
    """Always accepted; the work runs after the response so its duration reveals nothing."""
    auth.background.spawn(_password_reset(auth, normalise_email(email), ctx))


async def _password_reset(auth: Auth, address: str, ctx: Context) -> None:
    claim = await tables.claim_of(auth.pool, address)
    if claim is None:
        return
    account = await account_of(auth, claim, ctx)
    token = new_link_token()
    s = auth.settings
    stored = await tables.put_code(
        auth.pool,
        account.id,
        RESET,
        auth.codes.hash(account.id, RESET, token),
        timedelta(seconds=s.code_ttl_s),
        timedelta(seconds=s.code_resend_interval_s),
    )
    if not stored:
        return
    await execute(auth, account.id, lambda a: a.request_password_reset(), ctx)
    ttl = max(1, s.code_ttl_s // 60)
    message = mail.reset_link_message(s.mail_from, account.email, s.reset_url, token, ttl)
    await auth.mailer.send_quietly(message)


async def confirm_password_reset(
    auth: Auth, email: str, token: str, new_password: str, ctx: Context
) -> AppendResult:
    address = normalise_email(email)
    account = await account_by_code(auth, address, RESET, token, ctx)
    await tables.mark_verified(auth.pool, account.id)  # the link proved the address too
    await tables.set_password(auth.pool, account.id, await auth.passwords.hash(new_password))
    await tables.login_succeeded(auth.pool, f"account:{address}")
    revoked = await tables.revoke_sessions(auth.pool, account.id, "password_changed")
    expiries = {r.session_id: r.access_expires_at for r in revoked}
    return await execute(auth, account.id, lambda a: a.change_password(expiries), ctx)


async def forget(auth: Auth, account_id: str, ctx: Context) -> None:
    """Forget the person: destroy their data key first (from then on every encrypted field of
    theirs, in any event of any service, reads as its placeholder), then close the account:
    sessions revoked, address claim, password hash and codes deleted, `AccountClosed`
    appended, the plaintext snapshot dropped. Idempotent: a retry finishes what a crash left
    (a subject without an account, e.g. an admin-made profile, only loses its key)."""
    await auth.subject_keys.forget(account_id)
    if not is_uuid(account_id):  # a key subject that names no account (accounts are uuids)
        return
    revoked = await tables.revoke_sessions(auth.pool, account_id, "account_closed")
    await tables.release_account(auth.pool, account_id)
    account = await auth.accounts.load(account_id)
    if account.exists and not account.closed:
        expiries = {r.session_id: r.access_expires_at for r in revoked}
        await execute(
            auth, account_id, lambda a: a.close(expiries), ctx, key=f"auth.close:{account_id}"
        )
    await auth.accounts.store.delete_snapshots(account_id)


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


DEACTIVATED = "account_deactivated"  # the sessions' revoke reason


async def follow_user_status(
    auth: Auth, account_id: str, status: str, status_version: int, ctx: Context
) -> AppendResult:
    """Deactivated: login and refresh refused, every session ended (the SessionRevoked events
    carry it to every service's revocation list, and realtime closes the streams); active:
    login works again. Idempotent by `status_version` (the aggregate records each once).

    The sessions are ended in the table first (secret side first, as everywhere here), then
    appended; a login racing the deactivation either appended its session before (then the
    aggregate revokes it with the others, and the second sweep ends its row) or after (then
    the aggregate refuses it)."""
    account = await auth.accounts.load(account_id)
    if not account.exists:
        raise AccountNotFound(account_id)
    # a status change seen already (a replay) must not touch sessions opened since
    sweep = status == "deactivated" and status_version > account.status_version
    sweep = sweep and not (account.closed or account.cancelled)
    revoked = await tables.revoke_sessions(auth.pool, account_id, DEACTIVATED) if sweep else []
    expiries = {r.session_id: r.access_expires_at for r in revoked}
    outcome = await execute(
        auth, account_id, lambda a: a.follow_status(status, status_version, expiries), ctx
    )
    if sweep:
        await tables.revoke_sessions(auth.pool, account_id, DEACTIVATED)
    return outcome


async def request_email_change(
    auth: Auth, principal: AccessClaims, new_email: str, password: str, ctx: Context
) -> None:
    account = await auth.accounts.load(principal.sub)
    if not account.exists:
        raise NotAuthenticated
    try:
        await check_password(auth, account.email, password, ctx)
    except InvalidCredentials as error:
        raise WrongPassword from error
    address = normalise_email(new_email)
    if address == account.email:
        raise SameEmail
    holder = await tables.claim_of(auth.pool, address)
    if holder is not None and holder.account_id != account.id:
        auth.background.spawn(notify(auth, address, "address_in_use"))
        return
    await issue_code(auth, account.id, CHANGE_EMAIL, address, new_email=address)


async def confirm_email_change(
    auth: Auth, principal: AccessClaims, code: str, ctx: Context
) -> AppendResult:
    account = await auth.accounts.load(principal.sub)
    if not account.exists:
        raise InvalidCode
    # counted under the account's current address (its owner hears of a daily cap there)
    async with code_guard(auth, account.email, ctx):
        attempt = await check_code(auth, principal.sub, CHANGE_EMAIL, code)
    if attempt.new_email is None:
        raise InvalidCode
    new_email, old_email, keep = attempt.new_email, account.email, principal.sid
    if not await tables.try_move_claim(auth.pool, account.id, new_email, account.name):
        raise EmailTaken
    # whoever else holds a session (a thief who changed the address, or a forgotten device)
    # is signed out; the session that proved the password and the code stays
    revoked = await tables.revoke_sessions(auth.pool, account.id, "email_changed", keep=keep)
    expiries = {r.session_id: r.access_expires_at for r in revoked}

    def decide(a: Account) -> None:
        a.change_email(new_email)
        a.revoke_other_sessions(keep, "email_changed", expiries)

    outcome = await execute(auth, account.id, decide, ctx)
    if old_email != new_email:  # the old address hears of it: its holder may not be the one
        message = mail.notice_message(auth.settings.mail_from, old_email, "email_changed")
        auth.background.spawn(auth.mailer.send_quietly(message))
    return outcome


async def change_role(auth: Auth, email: str, role: str, ctx: Context) -> AppendResult:
    """Administrative (CLI): give the account holding `email` a role."""
    claim = await tables.claim_of(auth.pool, normalise_email(email))
    if claim is None:
        raise AccountNotFound(email)
    account = await account_of(auth, claim, ctx)
    new_role = "admin" if role == "admin" else "user"
    return await execute(auth, account.id, lambda a: a.change_role(new_role), ctx)
