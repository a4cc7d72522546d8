"""Sessions: login (throttled, same time and answer for unknown addresses), refresh-token
rotation with reuse detection, logout, and what a bearer token says (introspection, me)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from parley_commandkit import Context
from parley_eventstore.records import AppendResult

from parley_auth import tables
from parley_auth.accounts import account_of, execute, result_of
from parley_auth.core import (
    AccountInactive,
    Auth,
    InvalidCredentials,
    NotAuthenticated,
    Throttled,
    Tokens,
)
from parley_auth.domain import Account, AccountDisabled, normalise_email
from parley_auth.tokens import (
    AccessClaims,
    InvalidAccessToken,
    new_refresh_token,
    refresh_token_hash,
)


def delays(auth: Auth) -> tables.Delays:
    s = auth.settings
    return tables.Delays(s.login_free_failures, s.login_delay_base_s, s.login_delay_max_s)


async def check_password(auth: Auth, address: str, password: str, ctx: Context) -> tables.Claim:
    """Throttle, then verify (a dummy hash for unknown addresses: same time, same answer).

    Per address (known or not): a growing delay after each wrong password, never a lock, so
    a stranger guessing cannot keep the owner out for longer than the delay's cap: the right
    password after the wait works. Per client address: at most `login_max_failures_address`
    wrong passwords per window."""
    account_key = f"account:{address}"
    ip_limit = {f"ip:{ctx.client_address}": auth.settings.login_max_failures_address}
    if ctx.client_address:
        retry_after = await tables.throttled_for(auth.pool, ip_limit)
        if retry_after is not None:
            raise Throttled(retry_after)
    retry_after = await tables.admit_login(auth.pool, account_key, delays(auth))
    if retry_after is not None:
        raise Throttled(retry_after)
    claim = await tables.claim_of(auth.pool, address)
    stored = await tables.password_hash(auth.pool, claim.account_id) if claim else None
    matches = await auth.passwords.verify(stored, password)  # always hashes: same time
    if claim is None or not matches:
        await tables.login_failed(auth.pool, account_key, delays(auth))
        if ctx.client_address:
            window = timedelta(seconds=auth.settings.login_window_s)
            await tables.record_failure(auth.pool, dict.fromkeys(ip_limit, window))
        raise InvalidCredentials
    await tables.login_succeeded(auth.pool, account_key)
    if stored is not None and auth.passwords.needs_rehash(stored):
        await tables.set_password(auth.pool, claim.account_id, await auth.passwords.hash(password))
    return claim


async def login(auth: Auth, email: str, password: str, ctx: Context) -> Tokens:
    address = normalise_email(email)
    claim = await check_password(auth, address, password, ctx)
    account = await account_of(auth, claim, ctx)
    if not (account.verified and account.active):
        raise AccountInactive
    if account.disabled:
        # after the password check: only who knows the password learns the account is
        # deactivated (a wrong password gets the one 401 of every failed login)
        raise AccountDisabled(account.id)
    make_admin = address in auth.settings.bootstrap_admins()
    role = "admin" if make_admin else account.role
    session_id, now = str(uuid.uuid4()), datetime.now(UTC)
    access, claims = auth.keys.issue(account.id, role, session_id, auth.access_ttl, now)
    refresh = new_refresh_token()
    await tables.create_session(
        auth.pool,
        session_id,
        account.id,
        refresh_token_hash(refresh),
        auth.refresh_ttl,
        claims.expires_at,
        auth_time=now,
    )
    over_limit: list[str] = []

    def decide(a: Account) -> None:
        if make_admin:
            a.change_role("admin")
        over_limit[:] = a.log_in(session_id)

    outcome = await execute(auth, account.id, decide, ctx)
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
    if account.disabled:  # deactivated between the revocation of its sessions and now
        raise AccountDisabled(account.id)
    # auth_time stays the login's: a refresh proves holding a token, not knowing the password
    access, claims = auth.keys.issue(
        account.id, account.role, rotation.session_id, auth.access_ttl, now, rotation.auth_time
    )
    outcome = AppendResult(account.id, account.version, result_of(account), already_handled=True)
    return Tokens(access, new_token, claims, outcome)


async def _revoke(
    auth: Auth, account_id: str, session_id: str, reason: str, ctx: Context
) -> AppendResult | None:
    revoked = await tables.revoke_session(auth.pool, session_id, reason)
    expires = revoked.access_expires_at if revoked else None
    return await execute(
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
    return await execute(auth, principal.sub, lambda a: a.log_out(sid, expires), ctx)


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
        "auth_time": claims.auth_time,
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
        "deactivated": account.disabled,
        "version": account.version,
        "session_id": principal.sid,
        "sessions": await tables.open_sessions(auth.pool, account.id),
    }
