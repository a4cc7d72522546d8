"""The auth commands and their one routing table (no HTTP here).

Each command is a small dataclass; `BUS.handle(auth, command, ctx)` runs it in a span of its
own. The handlers live by subject: registration.py (register, verify, the saga's steps),
sessions.py (login, refresh, logout), recovery.py (password reset, email change, roles,
forgetting); what they share is in core.py (dependencies, refusals) and accounts.py.
Queries (introspection, `me`, a verification code for the saga) are plain functions there.
"""

from __future__ import annotations

from parley_commandkit import CommandBus, Context
from parley_eventstore.records import AppendResult, Metadata

from parley_auth import recovery, registration, sessions
from parley_auth.commands import (
    ActivateAccount,
    CancelRegistration,
    ChangeRole,
    ConfirmEmailChange,
    ConfirmPasswordReset,
    FollowUserStatus,
    Forget,
    LogIn,
    LogOut,
    Refresh,
    Register,
    RequestEmailChange,
    RequestPasswordReset,
    VerifyEmail,
)
from parley_auth.core import (
    AccountInactive,
    AlreadyVerified,
    Auth,
    AuthError,
    Background,
    EmailTaken,
    InvalidCode,
    InvalidCredentials,
    NotAuthenticated,
    SameEmail,
    Throttled,
    Tokens,
    TooManyAttempts,
    WrongPassword,
)
from parley_auth.recovery import (
    change_role,
    confirm_email_change,
    confirm_password_reset,
    follow_user_status,
    forget,
    request_email_change,
    request_password_reset,
)
from parley_auth.registration import (
    activate_account,
    cancel_registration,
    register,
    verification_code,
    verify_email,
)
from parley_auth.sessions import authenticate, introspect, login, logout, me, refresh

__all__ = [
    "BUS",
    "AccountInactive",
    "AlreadyVerified",
    "Auth",
    "AuthError",
    "Background",
    "Context",
    "EmailTaken",
    "InvalidCode",
    "InvalidCredentials",
    "Metadata",
    "NotAuthenticated",
    "SameEmail",
    "Throttled",
    "Tokens",
    "TooManyAttempts",
    "WrongPassword",
    "activate_account",
    "authenticate",
    "cancel_registration",
    "change_role",
    "confirm_email_change",
    "confirm_password_reset",
    "follow_user_status",
    "forget",
    "introspect",
    "login",
    "logout",
    "me",
    "refresh",
    "register",
    "request_email_change",
    "request_password_reset",
    "verification_code",
    "verify_email",
]


BUS: CommandBus[Auth] = CommandBus("auth")


@BUS.register(Register)
async def _register(auth: Auth, c: Register, ctx: Context) -> AppendResult:
    return await registration.register(auth, c.email, c.password, c.name, ctx)


@BUS.register(VerifyEmail)
async def _verify(auth: Auth, c: VerifyEmail, ctx: Context) -> AppendResult:
    return await registration.verify_email(auth, c.email, c.code, ctx)


@BUS.register(ActivateAccount)
async def _activate(auth: Auth, c: ActivateAccount, ctx: Context) -> AppendResult:
    return await registration.activate_account(auth, c.account_id, ctx, c.key)


@BUS.register(CancelRegistration)
async def _cancel(auth: Auth, c: CancelRegistration, ctx: Context) -> AppendResult | None:
    return await registration.cancel_registration(auth, c.account_id, c.reason, ctx, c.key)


@BUS.register(LogIn)
async def _log_in(auth: Auth, c: LogIn, ctx: Context) -> Tokens:
    return await sessions.login(auth, c.email, c.password, ctx)


@BUS.register(Refresh)
async def _refresh(auth: Auth, c: Refresh, ctx: Context) -> Tokens:
    return await sessions.refresh(auth, c.refresh_token, ctx)


@BUS.register(LogOut)
async def _log_out(auth: Auth, c: LogOut, ctx: Context) -> AppendResult:
    return await sessions.logout(auth, c.principal, ctx)


@BUS.register(RequestPasswordReset)
async def _request_reset(auth: Auth, c: RequestPasswordReset, ctx: Context) -> None:
    recovery.request_password_reset(auth, c.email, ctx)


@BUS.register(ConfirmPasswordReset)
async def _confirm_reset(auth: Auth, c: ConfirmPasswordReset, ctx: Context) -> AppendResult:
    return await recovery.confirm_password_reset(auth, c.email, c.token, c.new_password, ctx)


@BUS.register(Forget)
async def _forget(auth: Auth, c: Forget, ctx: Context) -> None:
    await recovery.forget(auth, c.account_id, ctx)


@BUS.register(RequestEmailChange)
async def _request_email_change(auth: Auth, c: RequestEmailChange, ctx: Context) -> None:
    await recovery.request_email_change(auth, c.principal, c.new_email, c.password, ctx)


@BUS.register(ConfirmEmailChange)
async def _confirm_email_change(auth: Auth, c: ConfirmEmailChange, ctx: Context) -> AppendResult:
    return await recovery.confirm_email_change(auth, c.principal, c.code, ctx)


@BUS.register(FollowUserStatus)
async def _follow_status(auth: Auth, c: FollowUserStatus, ctx: Context) -> AppendResult:
    return await recovery.follow_user_status(auth, c.account_id, c.status, c.status_version, ctx)


@BUS.register(ChangeRole)
async def _change_role(auth: Auth, c: ChangeRole, ctx: Context) -> AppendResult:
    return await recovery.change_role(auth, c.email, c.role, ctx)


# run one command, in its own span (parley_commandkit.CommandBus)
handle = BUS.handle
