"""Keys, access tokens, the JWKS, codes and mails, with no server."""

import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from parley_auth.mail import code_message, notice_message
from parley_auth.tokens import (
    CodeHasher,
    InvalidAccessToken,
    KeySet,
    key_from_dir,
    new_code,
    new_refresh_token,
    private_pem,
    refresh_token_hash,
)


def now() -> datetime:
    """At the call, not at import: a long suite can outlast a token issued at import time."""
    return datetime.now(UTC)


def test_issued_token_verifies_with_the_published_jwk() -> None:
    keys = KeySet(Ed25519PrivateKey.generate())
    token, claims = keys.issue("u1", "admin", "s1", timedelta(seconds=300), now())
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    [jwk] = keys.jwks()["keys"]
    assert header["kid"] == jwk["kid"]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    decoded = jwt.decode(
        token, jwt.PyJWK(jwk).key, algorithms=["EdDSA"], audience="parley", issuer="parley-auth"
    )
    assert (decoded["sub"], decoded["role"], decoded["sid"]) == ("u1", "admin", "s1")
    assert decoded["exp"] - decoded["iat"] == 300
    assert keys.verify(token) == claims


def test_previous_key_is_published_and_accepted_after_rotation() -> None:
    old = KeySet(Ed25519PrivateKey.generate())
    token, _ = old.issue("u1", "user", "s1", timedelta(seconds=60), now())
    new = KeySet(Ed25519PrivateKey.generate(), [old.signing_key.public_key()])
    assert [k["kid"] for k in new.jwks()["keys"]] == [new.kid, old.kid]
    assert new.verify(token).sub == "u1"
    stranger = KeySet(Ed25519PrivateKey.generate())
    with pytest.raises(InvalidAccessToken):
        stranger.verify(token)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"),  # signature
        lambda t: "not.a.jwt",
        lambda t: "",
    ],
)
def test_tampered_tokens_are_refused(mutate: object) -> None:
    keys = KeySet(Ed25519PrivateKey.generate())
    token, _ = keys.issue("u1", "user", "s1", timedelta(seconds=60), now())
    with pytest.raises(InvalidAccessToken):
        keys.verify(mutate(token))  # type: ignore[operator]


def test_expired_and_foreign_audience_tokens_are_refused() -> None:
    key = Ed25519PrivateKey.generate()
    expired, _ = KeySet(key).issue("u1", "user", "s1", timedelta(seconds=1), now() - timedelta(1))
    with pytest.raises(InvalidAccessToken):
        KeySet(key).verify(expired)
    other, _ = KeySet(key, audience="other").issue("u1", "user", "s1", timedelta(60), now())
    with pytest.raises(InvalidAccessToken):
        KeySet(key).verify(other)


def test_dev_key_is_generated_once_private_to_its_owner(tmp_path: Path) -> None:
    first = key_from_dir(tmp_path / "auth")
    again = key_from_dir(tmp_path / "auth")
    assert private_pem(first) == private_pem(again)
    mode = stat.S_IMODE((tmp_path / "auth" / "signing-key.pem").stat().st_mode)
    assert mode == 0o600
    keys = KeySet.from_settings(None, None, tmp_path / "auth", issuer="i", audience="a")
    assert private_pem(keys.signing_key) == private_pem(first)


def test_configured_pem_wins_and_previous_public_key_is_read() -> None:
    current, previous = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    keys = KeySet.from_settings(
        private_pem(current).decode(),
        private_pem(previous).decode(),
        Path("/nonexistent"),
        issuer="parley-auth",
        audience="parley",
    )
    assert len(keys.jwks()["keys"]) == 2
    assert private_pem(keys.signing_key) == private_pem(current)


def test_codes_and_refresh_tokens() -> None:
    codes = {new_code() for _ in range(200)}
    assert all(re.fullmatch(r"[0-9]{6}", c) for c in codes)
    assert len(codes) > 150
    hasher = CodeHasher(b"secret")
    stored = hasher.hash("a1", "verify_email", "123456")
    assert hasher.matches("a1", "verify_email", "123456", stored)
    assert not hasher.matches("a1", "verify_email", "123457", stored)
    assert not hasher.matches("a1", "password_reset", "123456", stored)  # bound to purpose
    assert not CodeHasher(b"other").matches("a1", "verify_email", "123456", stored)
    token = new_refresh_token()
    assert len(token) >= 43 and token != new_refresh_token()
    assert refresh_token_hash(token) != token.encode()


SIX_DIGITS = re.compile(rb"(?<![0-9])[0-9]{6}(?![0-9])")


@pytest.mark.parametrize("purpose", ["verify_email", "password_reset", "change_email"])
def test_code_mail_holds_no_other_six_digit_number(purpose: str) -> None:
    for _ in range(50):  # Message-ID and Date vary: none may ever look like a code
        raw = code_message("Parley <a@b.invalid>", "ada@example.test", purpose, "042424", 10)
        assert SIX_DIGITS.findall(raw.as_bytes()) == [b"042424"]


def test_notice_mails_hold_no_code() -> None:
    for kind in ("already_registered", "address_in_use"):
        raw = notice_message("Parley <a@b.invalid>", "ada@example.test", kind).as_bytes()
        assert SIX_DIGITS.findall(raw) == []


async def test_background_failures_are_logged_not_swallowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from parley_auth.handlers import Background

    async def boom() -> None:
        raise RuntimeError("smtp exploded")

    background = Background()
    background.spawn(boom())
    await background.drain()
    assert "background work failed" in caplog.text
    assert "smtp exploded" in caplog.text


async def test_tokens_pass_the_verifier_other_services_use() -> None:
    """The contract with libs/authn: what this service issues and publishes, it accepts."""
    from parley_authn import KeySet as JwksCache
    from parley_authn import Verifier

    keys = KeySet(Ed25519PrivateKey.generate())
    token, claims = keys.issue("u1", "admin", "s1", timedelta(seconds=300), datetime.now(UTC))
    verifier = Verifier(JwksCache(jwks=keys.jwks()))
    principal = await verifier.verify(token)
    assert (principal.user_id, principal.role, principal.session_id) == ("u1", "admin", "s1")
    assert principal.expires_at == claims.expires_at
