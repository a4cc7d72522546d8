"""Command handlers: plain async functions over the `Auth` dependencies (no HTTP here).

Order of writes: the event store appends in its own transaction, the secret tables in theirs,
so every handler writes the secret side first (idempotent, harmless if the event then fails)
and appends last; whatever a crash leaves half done is rolled forward by the next request that
touches the account (`_account_of`):
- a claim row whose account has no events = an interrupted registration: the registration is
  appended from the claim row (same id, same email and name, same idempotency key);
- a claim row whose address differs from the account's = an interrupted email change: the
  change is appended.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from parley_eventstore.aggregate import Repository
from parley_eventstore.outbox import enqueue
from parley_eventstore.records import AppendResult, ConcurrencyError, Metadata
from parley_messaging.saga import decoy_record
from parley_messaging.topics import SAGA_REPLIES
from parley_privacy.store import KeyStore

from parley_auth import mail, tables
from parley_auth.config import Settings
from parley_auth.domain import Account, AccountExists, AccountNotFound, normalise_email
from parley_auth.passwords import Passwords
from parley_auth.tokens import (
    AccessClaims,
    CodeHasher,
    InvalidAccessToken,
    KeySet,
    new_code,
    new_refresh_token,
    refresh_token_hash,
)

VERIFY, RESET, CHANGE_EMAIL = "verify_email", "password_reset", "change_email"
log = logging.getLogger("parley.auth")


class AuthError(Exception):
    """A refused request; the HTTP layer maps each subclass to one status."""


class InvalidCredentials(AuthError):
    """Unknown address, wrong password or dead refresh token: one answer for all (401)."""


class NotAuthenticated(AuthError):
    """No valid access token for an open session (401)."""


class AccountInactive(AuthError):
    """Right password, but the address is not verified yet (403)."""


class WrongPassword(AuthError):
    """A signed-in holder confirming a sensitive change gave a wrong password (403)."""


class InvalidCode(AuthError):
    """Wrong, expired or unknown code; never says whether the address exists (400)."""


class TooManyAttempts(AuthError):
    """The live code was tried too often (ask for a new one), or the address / account had
    too many wrong codes lately (`retry_after` seconds) (429)."""

    def __init__(self, retry_after: int | None = None) -> None:
        super().__init__("too many attempts")
        self.retry_after = retry_after


class Throttled(AuthError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


class EmailTaken(AuthError):
    """The new address was claimed by another account meanwhile (409)."""


class SameEmail(AuthError):
    """The new address is the current one (422)."""


@dataclass
class Background:
    """Work done after the response (mails, enumeration-safe flows); `drain()` waits for it."""

    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # never swallowed: the client already has its 202, the log must say what failed
            log.error("background work failed", exc_info=task.exception())

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


@dataclass
class Auth:
    """Everything a handler needs, built once by bootstrap()."""

    settings: Settings
    pool: asyncpg.Pool
    accounts: Repository[Account]
    keys: KeySet
    codes: CodeHasher
    passwords: Passwords
    mailer: mail.Mailer
    subject_keys: KeyStore
    background: Background = field(default_factory=Background)

    @property
    def access_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.access_ttl_s)

    @property
    def refresh_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.refresh_ttl_s)


@dataclass(frozen=True)
class Context:
    metadata: Metadata
    client_address: str | None = None


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    claims: AccessClaims
    outcome: AppendResult


def _result(account: Account) -> dict[str, Any]:
    return {"id": account.id, "version": account.next_version}


async def _execute(
    auth: Auth, account_id: str, command: Any, ctx: Context, key: str | None = None
) -> AppendResult:
    return await auth.accounts.execute(
        account_id,
        command,
        metadata=ctx.metadata,
        idempotency_key=key,
        result=_result,
        retries=3,  # account commands are checked against the fresh state on every try
    )


# -- registration and verification -------------------------------------------------------------


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
    return await _append_registration(auth, account_id, address, name, ctx)


async def _append_registration(
    auth: Auth, account_id: str, email: str, name: str, ctx: Context
) -> AppendResult:
    try:
        return await _execute(
            auth,
            account_id,
            lambda a: a.register(email, name),
            ctx,
            key=f"auth.register:{account_id}",
        )
    except (ConcurrencyError, AccountExists):  # a concurrent roll-forward appended it
        account = await auth.accounts.load(account_id)
        return AppendResult(account.id, account.version, _result(account), already_handled=True)


async def _account_of(auth: Auth, claim: tables.Claim, ctx: Context) -> Account:
    """The account holding a claim, after rolling forward what a crash left half done."""
    account = await auth.accounts.load(claim.account_id)
    if not account.exists:
        await _append_registration(auth, claim.account_id, claim.email, claim.name, ctx)
        account = await auth.accounts.load(claim.account_id)
    elif account.email != claim.email:
        email = claim.email
        await _execute(auth, account.id, lambda a: a.change_email(email), ctx)
        account = await auth.accounts.load(claim.account_id)
    return account


async def _already_registered(auth: Auth, address: str, ctx: Context) -> None:
    """After the response: complete the holder's registration if a crash interrupted it, and
    tell the address's owner someone tried to register with it."""
    claim = await tables.claim_of(auth.pool, address)
    if claim is not None:
        await _account_of(auth, claim, ctx)
    await _notify(auth, address, "already_registered")


async def _notify(auth: Auth, address: str, kind: str) -> None:
    """Mail a notice, at most `notice_max` per address per window (repeated duplicate
    registrations must not turn the service into a mail bomb)."""
    window = timedelta(seconds=auth.settings.login_window_s)
    key = f"notice:{address}"
    if await tables.throttled_for(auth.pool, {key: auth.settings.notice_max}, window):
        return
    await tables.record_failure(auth.pool, [key], window)
    await auth.mailer.send_quietly(mail.notice_message(auth.settings.mail_from, address, kind))


async def _issue_code(
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


async def _check_code(auth: Auth, account_id: str, purpose: str, code: str) -> tables.CodeAttempt:
    attempt = await tables.attempt_code(auth.pool, account_id, purpose)
    if attempt is None or attempt.expired:
        raise InvalidCode
    if attempt.attempts > auth.settings.code_max_attempts:
        raise TooManyAttempts
    if not auth.codes.matches(account_id, purpose, code, attempt.code_hash):
        raise InvalidCode
    if not await tables.consume_code(auth.pool, account_id, purpose, attempt.code_hash):
        raise InvalidCode  # a parallel request used it
    return attempt


@asynccontextmanager
async def _code_guard(auth: Auth, key: str) -> AsyncIterator[None]:
    """Wrong codes per address (or account) across all its codes, within the login window:
    asking for new codes does not buy more guesses. Unknown addresses count alike, so the
    429 tells nothing about existence."""
    window = timedelta(seconds=auth.settings.login_window_s)
    limit = {key: auth.settings.code_max_failures}
    retry_after = await tables.throttled_for(auth.pool, limit, window)
    if retry_after is not None:
        raise TooManyAttempts(retry_after)
    try:
        yield
    except InvalidCode:
        await tables.record_failure(auth.pool, [key], window)
        raise


async def verify_email(auth: Auth, email: str, code: str, ctx: Context) -> AppendResult:
    address = normalise_email(email)
    async with _code_guard(auth, f"code:{address}"):
        claim = await tables.claim_of(auth.pool, address)
        if claim is None:
            raise InvalidCode
        account = await _account_of(auth, claim, ctx)
        await _check_code(auth, account.id, VERIFY, code)
    return await _execute(auth, account.id, lambda a: a.verify_email(), ctx)


# -- the registration saga's steps (commands over Kafka, see saga.py) ----------------------------


class AlreadyVerified(AuthError):
    """The address of this account is verified already: no code to send (409)."""


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
    return await _execute(auth, account_id, lambda a: a.activate(), ctx, key=key)


async def cancel_registration(
    auth: Auth, account_id: str, reason: str, ctx: Context, key: str
) -> AppendResult | None:
    """Release the address (secret side first, as everywhere here), then close the account.
    An account that was never appended has nothing to close."""
    await tables.release_account(auth.pool, account_id)
    account = await auth.accounts.load(account_id)
    if not account.exists:
        return None
    return await _execute(auth, account_id, lambda a: a.cancel_registration(reason), ctx, key=key)


# -- login, refresh, logout ---------------------------------------------------------------------


def _throttle_keys(auth: Auth, address: str, ctx: Context) -> dict[str, int]:
    keys = {f"account:{address}": auth.settings.login_max_failures_account}
    if ctx.client_address:
        keys[f"ip:{ctx.client_address}"] = auth.settings.login_max_failures_address
    return keys


async def _check_password(auth: Auth, address: str, password: str, ctx: Context) -> tables.Claim:
    """Throttle, then verify (a dummy hash for unknown addresses: same time, same answer)."""
    window = timedelta(seconds=auth.settings.login_window_s)
    keys = _throttle_keys(auth, address, ctx)
    retry_after = await tables.throttled_for(auth.pool, keys, window)
    if retry_after is not None:
        raise Throttled(retry_after)
    claim = await tables.claim_of(auth.pool, address)
    stored = await tables.password_hash(auth.pool, claim.account_id) if claim else None
    matches = await auth.passwords.verify(stored, password)  # always hashes: same time
    if claim is None or not matches:
        await tables.record_failure(auth.pool, list(keys), window)
        raise InvalidCredentials
    await tables.clear_failures(auth.pool, f"account:{address}")
    if stored is not None and auth.passwords.needs_rehash(stored):
        await tables.set_password(auth.pool, claim.account_id, await auth.passwords.hash(password))
    return claim


async def login(auth: Auth, email: str, password: str, ctx: Context) -> Tokens:
    address = normalise_email(email)
    claim = await _check_password(auth, address, password, ctx)
    account = await _account_of(auth, claim, ctx)
    if not (account.verified and account.active):
        raise AccountInactive
    make_admin = address in auth.settings.bootstrap_admins()
    role = "admin" if make_admin else account.role
    session_id = str(uuid.uuid4())
    access, claims = auth.keys.issue(
        account.id, role, session_id, auth.access_ttl, datetime.now(UTC)
    )
    refresh = new_refresh_token()
    await tables.create_session(
        auth.pool,
        session_id,
        account.id,
        refresh_token_hash(refresh),
        auth.refresh_ttl,
        claims.expires_at,
    )
    over_limit: list[str] = []

    def decide(a: Account) -> None:
        if make_admin:
            a.change_role("admin")
        over_limit[:] = a.log_in(session_id)

    outcome = await _execute(auth, account.id, decide, ctx)
    if over_limit:
        await tables.revoke_sessions(auth.pool, account.id, "session_limit", over_limit)
    return Tokens(access, refresh, claims, outcome)


async def refresh(auth: Auth, token: str, ctx: Context) -> Tokens:
    """Rotate: the presented token is used up and a new pair issued. A token presented a second
    time means it leaked (or the client raced itself): the whole session is revoked."""
    now = datetime.now(UTC)
    new_token = new_refresh_token()
    rotation = await tables.rotate_refresh_token(
        auth.pool,
        refresh_token_hash(token),
        refresh_token_hash(new_token),
        auth.refresh_ttl,
        now + auth.access_ttl,
    )
    if rotation.outcome == "reused" and rotation.session_id and rotation.account_id:
        await _revoke(auth, rotation.account_id, rotation.session_id, "refresh_token_reuse", ctx)
        raise InvalidCredentials
    if rotation.outcome != "rotated" or not rotation.session_id or not rotation.account_id:
        raise InvalidCredentials
    account = await auth.accounts.load(rotation.account_id)
    if not account.active or rotation.session_id not in account.sessions:
        raise InvalidCredentials
    access, claims = auth.keys.issue(
        account.id, account.role, rotation.session_id, auth.access_ttl, now
    )
    outcome = AppendResult(account.id, account.version, _result(account), already_handled=True)
    return Tokens(access, new_token, claims, outcome)


async def _revoke(
    auth: Auth, account_id: str, session_id: str, reason: str, ctx: Context
) -> AppendResult | None:
    revoked = await tables.revoke_session(auth.pool, session_id, reason)
    expires = revoked.access_expires_at if revoked else None
    return await _execute(
        auth, account_id, lambda a: a.revoke_session(session_id, reason, expires), ctx
    )


async def authenticate(auth: Auth, bearer: str | None) -> AccessClaims:
    """The claims of a valid access token whose session is still open."""
    if not bearer:
        raise NotAuthenticated
    try:
        claims = auth.keys.verify(bearer)
    except InvalidAccessToken as error:
        raise NotAuthenticated from error
    if not await tables.session_open(auth.pool, claims.sid):
        raise NotAuthenticated
    return claims


async def logout(auth: Auth, principal: AccessClaims, ctx: Context) -> AppendResult:
    revoked = await tables.revoke_session(auth.pool, principal.sid, "logout")
    expires = revoked.access_expires_at if revoked else principal.expires_at
    sid = principal.sid
    return await _execute(auth, principal.sub, lambda a: a.log_out(sid, expires), ctx)


async def introspect(auth: Auth, token: str) -> dict[str, Any]:
    """RFC 7662: active only for a valid access token of an open session."""
    try:
        claims = await authenticate(auth, token)
    except NotAuthenticated:
        return {"active": False}
    return {
        "active": True,
        "sub": claims.sub,
        "role": claims.role,
        "sid": claims.sid,
        "iat": claims.iat,
        "exp": claims.exp,
        "iss": auth.keys.issuer,
        "aud": auth.keys.audience,
        "token_type": "access_token",
    }


async def me(auth: Auth, principal: AccessClaims) -> dict[str, Any]:
    account = await auth.accounts.load(principal.sub)
    if not account.exists:
        raise NotAuthenticated
    return {
        "id": account.id,
        "email": account.email,
        "name": account.name,
        "role": account.role,
        "verified": account.verified,
        "active": account.active,
        "version": account.version,
        "session_id": principal.sid,
        "sessions": await tables.open_sessions(auth.pool, account.id),
    }


# -- password reset ---------------------------------------------------------------------------


def request_password_reset(auth: Auth, email: str, ctx: Context) -> None:
    """Always accepted; the work runs after the response so its duration reveals nothing."""
    auth.background.spawn(_password_reset(auth, normalise_email(email), ctx))


async def _password_reset(auth: Auth, address: str, ctx: Context) -> None:
    claim = await tables.claim_of(auth.pool, address)
    if claim is None:
        return
    account = await _account_of(auth, claim, ctx)
    code = new_code()
    s = auth.settings
    stored = await tables.put_code(
        auth.pool,
        account.id,
        RESET,
        auth.codes.hash(account.id, RESET, code),
        timedelta(seconds=s.code_ttl_s),
        timedelta(seconds=s.code_resend_interval_s),
    )
    if not stored:
        return
    await _execute(auth, account.id, lambda a: a.request_password_reset(), ctx)
    message = mail.code_message(s.mail_from, account.email, RESET, code, max(1, s.code_ttl_s // 60))
    await auth.mailer.send_quietly(message)


async def confirm_password_reset(
    auth: Auth, email: str, code: str, new_password: str, ctx: Context
) -> AppendResult:
    address = normalise_email(email)
    async with _code_guard(auth, f"code:{address}"):
        claim = await tables.claim_of(auth.pool, address)
        if claim is None:
            raise InvalidCode
        account = await _account_of(auth, claim, ctx)
        await _check_code(auth, account.id, RESET, code)
    await tables.set_password(auth.pool, account.id, await auth.passwords.hash(new_password))
    await tables.clear_failures(auth.pool, f"account:{address}")
    revoked = await tables.revoke_sessions(auth.pool, account.id, "password_changed")
    expiries = {r.session_id: r.access_expires_at for r in revoked}
    return await _execute(auth, account.id, lambda a: a.change_password(expiries), ctx)


# -- forgetting a person (crypto-shredding) ----------------------------------------------------


async def forget(auth: Auth, account_id: str, ctx: Context) -> None:
    """Forget the person: destroy their data key first (from then on every encrypted field of
    theirs, in any event of any service, reads as its placeholder), then close the account:
    sessions revoked, address claim, password hash and codes deleted, `AccountClosed`
    appended, the plaintext snapshot dropped. Idempotent: a retry finishes what a crash left
    (a subject without an account, e.g. an admin-made profile, only loses its key)."""
    await auth.subject_keys.forget(account_id)
    revoked = await tables.revoke_sessions(auth.pool, account_id, "account_closed")
    await tables.release_account(auth.pool, account_id)
    account = await auth.accounts.load(account_id)
    if account.exists and not account.closed:
        expiries = {r.session_id: r.access_expires_at for r in revoked}
        await _execute(
            auth, account_id, lambda a: a.close(expiries), ctx, key=f"auth.close:{account_id}"
        )
    await auth.accounts.store.delete_snapshots(account_id)


# -- email change and roles ---------------------------------------------------------------------


async def request_email_change(
    auth: Auth, principal: AccessClaims, new_email: str, password: str, ctx: Context
) -> None:
    account = await auth.accounts.load(principal.sub)
    if not account.exists:
        raise NotAuthenticated
    try:
        await _check_password(auth, account.email, password, ctx)
    except InvalidCredentials as error:
        raise WrongPassword from error
    address = normalise_email(new_email)
    if address == account.email:
        raise SameEmail
    holder = await tables.claim_of(auth.pool, address)
    if holder is not None and holder.account_id != account.id:
        auth.background.spawn(_notify(auth, address, "address_in_use"))
        return
    await _issue_code(auth, account.id, CHANGE_EMAIL, address, new_email=address)


async def confirm_email_change(
    auth: Auth, principal: AccessClaims, code: str, ctx: Context
) -> AppendResult:
    async with _code_guard(auth, f"code:{principal.sub}"):
        attempt = await _check_code(auth, principal.sub, CHANGE_EMAIL, code)
    account = await auth.accounts.load(principal.sub)
    if not account.exists or attempt.new_email is None:
        raise InvalidCode
    new_email = attempt.new_email
    if not await tables.try_move_claim(auth.pool, account.id, new_email, account.name):
        raise EmailTaken
    return await _execute(auth, account.id, lambda a: a.change_email(new_email), ctx)


async def change_role(auth: Auth, email: str, role: str, ctx: Context) -> AppendResult:
    """Administrative (CLI): give the account holding `email` a role."""
    claim = await tables.claim_of(auth.pool, normalise_email(email))
    if claim is None:
        raise AccountNotFound(email)
    account = await _account_of(auth, claim, ctx)
    new_role = "admin" if role == "admin" else "user"
    return await _execute(auth, account.id, lambda a: a.change_role(new_role), ctx)
