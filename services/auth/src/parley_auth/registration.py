"""Registration and verification: claiming an address, the code check, and the registration
saga's steps (a verification code for the notifications service to mail, activation,
cancellation)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from parley_commandkit import Context
from parley_eventstore.outbox import enqueue
from parley_eventstore.records import AppendResult
from parley_messaging.saga import decoy_record
from parley_messaging.topics import SAGA_REPLIES

from parley_auth import tables
from parley_auth.accounts import (
    account_by_code,
    account_of,
    append_registration,
    execute,
    notify,
)
from parley_auth.core import VERIFY, AlreadyVerified, Auth
from parley_auth.domain import normalise_email
from parley_auth.tokens import (
    new_code,
)


async def register(auth: Auth, email: str, password: str, name: str, ctx: Context) -> AppendResult:
    """New address: claim it with the password hash and append UserRegistered; the registration
    saga takes it from there (profile, verification-code mail, role, activation). Taken
    address: the same 202 with a decoy id (nothing reveals the account), and a notice to the
    address's owner."""
    address = normalise_email(email)
    hashed = await auth.passwords.hash(password)
    account_id = str(uuid.uuid4())
    owner = await tables.claim_email(auth.pool, address, account_id, name, hashed)
    if owner != account_id:
        decoy = str(uuid.uuid4())
        auth.background.spawn(_already_registered(auth, address, ctx))
        # the saga shows the decoy a registration too: the status endpoint must not tell
        # a taken address (decoy id, 404) from a free one
        key, headers, value = decoy_record(decoy, "/parley/auth")
        await enqueue(auth.pool, SAGA_REPLIES, key, headers, value)  # private: the same relay
        return AppendResult(decoy, 1, {})
    return await append_registration(auth, account_id, address, name, ctx)


async def _already_registered(auth: Auth, address: str, ctx: Context) -> None:
    """After the response: complete the holder's registration if a crash interrupted it, and
    tell the address's owner someone tried to register with it."""
    claim = await tables.claim_of(auth.pool, address)
    if claim is not None:
        await account_of(auth, claim, ctx)
    await notify(auth, address, "already_registered")


async def verify_email(auth: Auth, email: str, code: str, ctx: Context) -> AppendResult:
    address = normalise_email(email)
    account = await account_by_code(auth, address, VERIFY, code, ctx)
    await tables.mark_verified(auth.pool, account.id)  # secret side first: no longer expires
    return await execute(auth, account.id, lambda a: a.verify_email(), ctx)


async def verification_code(auth: Auth, account_id: str) -> tuple[str, str] | None:
    """A fresh verification code for an account still to verify: (address, code), for the
    notifications service to mail. The previous code, if any, stops working. None: no such
    account (or a cancelled one); AlreadyVerified: nothing to verify."""
    account = await auth.accounts.load(account_id)
    if not account.exists or account.cancelled:
        return None
    if account.verified:
        raise AlreadyVerified(account_id)
    code = new_code()
    await tables.put_code(
        auth.pool,
        account_id,
        VERIFY,
        auth.codes.hash(account_id, VERIFY, code),
        timedelta(seconds=auth.settings.code_ttl_s),
        timedelta(0),  # the saga asks once per registration (retries replace the code)
    )
    return account.email, code


async def activate_account(auth: Auth, account_id: str, ctx: Context, key: str) -> AppendResult:
    return await execute(auth, account_id, lambda a: a.activate(), ctx, key=key)


async def cancel_registration(
    auth: Auth, account_id: str, reason: str, ctx: Context, key: str
) -> AppendResult | None:
    """Release the address (secret side first, as everywhere here), then close the account.
    An account that was never appended has nothing to close."""
    await tables.release_account(auth.pool, account_id)
    account = await auth.accounts.load(account_id)
    if not account.exists:
        return None
    return await execute(auth, account_id, lambda a: a.cancel_registration(reason), ctx, key=key)
