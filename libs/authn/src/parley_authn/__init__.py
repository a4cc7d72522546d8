"""Local authentication for Parley's HTTP services (see libs/authn/README.md).

Access tokens are verified in-process against the auth service's JWKS (:class:`Verifier`),
revoked sessions come from ``auth.events`` on Kafka (:class:`RevocationList`), and FastAPI
routes get the caller through :data:`CurrentPrincipal` / :func:`require_principal`.
"""

from parley_authn.http import (
    CurrentPrincipal,
    OptionalPrincipal,
    install_authn,
    optional_principal,
    require_fresh_authentication,
    require_principal,
    require_role,
    require_self_or_admin,
)
from parley_authn.revocation import RevocationList
from parley_authn.settings import AuthnSettings
from parley_authn.tokens import InvalidToken, KeySet, Principal, Verifier

__all__ = [
    "AuthnSettings",
    "CurrentPrincipal",
    "InvalidToken",
    "KeySet",
    "OptionalPrincipal",
    "Principal",
    "RevocationList",
    "Verifier",
    "install_authn",
    "optional_principal",
    "require_fresh_authentication",
    "require_principal",
    "require_role",
    "require_self_or_admin",
]
