"""Registration tokens: what `POST /v1/auth/register` hands the registrant so that only they
can read `GET /v1/registrations/{id}` (the saga's status route, issue 19).

The registration id is the account id, which stops being a secret soon (user ids appear in
profiles, conversations, contacts), so the id alone must not show anyone's registration times.
The token is the first 16 bytes of HMAC-SHA256 over `b"parley-registration-v1." + id` with a
secret auth-api and the registration saga share (`<PREFIX>_REGISTRATION_SECRET`), URL-safe
base64: nothing to store, the same for a taken address's decoy id (whose shadow saga answers
like a real one), and a saga replica can check it without asking auth.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

HEADER = "X-Registration-Token"
_DOMAIN = b"parley-registration-v1."


def registration_token(secret: str, registration_id: str) -> str:
    """The token for `registration_id` (`secret` must not be empty)."""
    if not secret:
        raise ValueError("registration tokens need a secret")
    mac = hmac.new(secret.encode(), _DOMAIN + registration_id.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:16]).decode().rstrip("=")


def holds_registration(secret: str, registration_id: str, token: str | None) -> bool:
    """True when `token` is `registration_id`'s (always False without a secret or a token)."""
    if not secret or not token:
        return False
    expected = registration_token(secret, registration_id)
    return hmac.compare_digest(token.encode(), expected.encode())
