"""Account helpers the handlers share: appending to an account, rolling forward what a crash
left half done (`account_of`), notices, and one-time codes (issue, check, the wrong-code
guard).

Order of writes: the event store appends in its own transaction, the secret tables in theirs,
so every handler writes the secret side first (idempotent, harmless if the event then fails)
and appends last; whatever a crash leaves half done is rolled forward by the next request that
touches the account (`account_of`):
- a claim row whose account has no events = an interrupted registration: the registration is
  appended from the claim row (same id, same email and name, same idempotency key);
- a claim row whose address differs from the account's = an interrupted email change: the
  change is appended.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from parley_commandkit import Context, appending
from parley_commandkit.appending import version_of
from parley_eventstore.records import AppendResult, ConcurrencyError

from parley_auth import mail, tables
from parley_auth.core import Auth, InvalidCode, TooManyAttempts
from parley_auth.domain import Account, AccountExists
from parley_auth.tokens import (
    new_code,
)

result_of = version_of


async def execute(
    auth: Auth, account_id: str, command: Any, ctx: Context, key: str | None = None
) -> AppendResult:
    """Append to an account (checked against the fresh state on every try); auth's commands
    are idempotent by their own keys, not a client's."""
    return await appending.execute(auth.accounts, account_id, command, ctx, key=key)


async def append_registration(
    auth: Auth, account_id: str, email: str, name: str, ctx: Context
) -> AppendResult:
    try:
        return await execute(
            auth,
            account_id,
            lambda a: a.register(email, name),
            ctx,
            key=f"auth.register:{account_id}",
        )
    except (ConcurrencyError, AccountExists):  # a concurrent roll-forward appended it
        account = await auth.accounts.load(account_id)
        return AppendResult(account.id, account.version, result_of(account), already_handled=True)


async def account_of(auth: Auth, claim: tables.Claim, ctx: Context) -> Account:
    """The account holding a claim, after rolling forward what a crash left half done."""
    account = await auth.accounts.load(claim.account_id)
    if not account.exists:
        await append_registration(auth, claim.account_id, claim.email, claim.name, ctx)
        account = await auth.accounts.load(claim.account_id)
    elif account.email != claim.email:
        email = claim.email
        await execute(auth, account.id, lambda a: a.change_email(email), ctx)
        account = await auth.accounts.load(claim.account_id)
    return account


async def notify(auth: Auth, address: str, kind: str) -> None:
    """Mail a notice, at most `notice_max` per address per window (repeated duplicate
    registrations must not turn the service into a mail bomb)."""
    key = f"notice:{address}"
    if await tables.throttled_for(auth.pool, {key: auth.settings.notice_max}):
        return
    await tables.record_failure(auth.pool, {key: timedelta(seconds=auth.settings.login_window_s)})
    await auth.mailer.send_quietly(mail.notice_message(auth.settings.mail_from, address, kind))


async def issue_code(
    auth: Auth, account_id: str, purpose: str, to: str, new_email: str | None = None
) -> None:
    """Store the hash of a fresh code and mail the code (unless one was issued moments ago)."""
    code = new_code()
    s = auth.settings
    stored = await tables.put_code(
        auth.pool,
        account_id,
        purpose,
        auth.codes.hash(account_id, purpose, code),
        timedelta(seconds=s.code_ttl_s),
        timedelta(seconds=s.code_resend_interval_s),
        new_email,
    )
    if stored:
        message = mail.code_message(s.mail_from, to, purpose, code, max(1, s.code_ttl_s // 60))
        auth.background.spawn(auth.mailer.send_quietly(message))


async def check_code(auth: Auth, account_id: str, purpose: str, code: str) -> tables.CodeAttempt:
    attempt = await tables.attempt_code(auth.pool, account_id, purpose)
    if attempt is None or attempt.expired:
        raise InvalidCode
    if attempt.attempts > auth.settings.code_max_attempts:
        # burnt, and answered like any wrong code: a 429 here would exist for known
        # addresses only (the per-address limit, equal or lower, answers 429 to both first)
        await tables.burn_codes(auth.pool, account_id, purpose)
        raise InvalidCode
    if not auth.codes.matches(account_id, purpose, code, attempt.code_hash):
        raise InvalidCode
    if not await tables.consume_code(auth.pool, account_id, purpose, attempt.code_hash):
        raise InvalidCode  # a parallel request used it
    return attempt


DAY = timedelta(days=1)


def _code_limits(auth: Auth, address: str, ctx: Context) -> tuple[dict[str, int], str]:
    """The wrong-code counters a check is subject to ({key: limit}) and the daily one's key."""
    s = auth.settings
    daily = f"code-day:{address}"
    limits = {f"code:{address}": s.code_max_failures, daily: s.code_daily_cap}
    limits["code-all"] = s.code_max_failures_global
    if ctx.client_address:
        limits[f"code-ip:{ctx.client_address}"] = s.code_max_failures_client
    return limits, daily


@asynccontextmanager
async def code_guard(auth: Auth, address: str, ctx: Context) -> AsyncIterator[None]:
    """Wrong codes across all codes of an address (asking for new codes buys no guesses), of
    a client address and overall, in the login window, and per address and day. Unknown
    addresses count alike, so the 429 tells nothing about existence. The wrong code that
    reaches the daily cap burns the address's codes and mails its owner (after the answer,
    so known and unknown addresses take the same time)."""
    limits, daily = _code_limits(auth, address, ctx)
    retry_after = await tables.throttled_for(auth.pool, limits)
    if retry_after is not None:
        raise TooManyAttempts(retry_after)
    try:
        yield
    except InvalidCode:
        window = timedelta(seconds=auth.settings.login_window_s)
        counts = await tables.record_failure(
            auth.pool, {k: DAY if k == daily else window for k in limits}
        )
        if counts.get(daily) == auth.settings.code_daily_cap:
            auth.background.spawn(_burn(auth, address))
        raise


async def _burn(auth: Auth, address: str) -> None:
    """The daily cap of wrong codes for `address` was reached: its codes stop working and its
    owner hears of it (nothing happens for an address without an account)."""
    claim = await tables.claim_of(auth.pool, address)
    if claim is None:
        return
    await tables.burn_codes(auth.pool, claim.account_id)
    message = mail.notice_message(auth.settings.mail_from, address, "codes_guessed")
    await auth.mailer.send_quietly(message)


async def account_by_code(
    auth: Auth, address: str, purpose: str, code: str, ctx: Context
) -> Account:
    """The account of `address` once `code` proved the holder has it (wrong codes counted per
    address, unknown addresses alike: InvalidCode / TooManyAttempts say nothing of existence)."""
    async with code_guard(auth, address, ctx):
        claim = await tables.claim_of(auth.pool, address)
        if claim is None:
            raise InvalidCode
        account = await account_of(auth, claim, ctx)
        await check_code(auth, account.id, purpose, code)
    return account
