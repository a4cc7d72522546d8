"""Verifier and KeySet: what passes, what is refused, and how often the JWKS is fetched."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from parley_authn import InvalidToken, KeySet, Principal, Verifier
from parley_testing.tokens import Signer, claims, hmac_signed, jwks, unsigned

JWKS_URL = "http://auth.test/.well-known/jwks.json"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class JwksServer:
    """An httpx transport playing the auth service's JWKS endpoint."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.status = 200
        self.calls = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        self.calls += 1
        return httpx.Response(self.status, json=self.document)

    def keyset(self, clock: Clock, **options: Any) -> KeySet:
        return KeySet(JWKS_URL, transport=httpx.MockTransport(self.handler), clock=clock, **options)


async def test_a_valid_token_gives_its_principal() -> None:
    signer = Signer()
    verifier = Verifier(KeySet(jwks=jwks(signer)))
    exp = int(time.time()) + 600
    token = signer.token(sub="u-42", role="admin", sid="s-7", exp=exp)

    principal = await verifier.verify(token)

    assert principal == Principal("u-42", "admin", "s-7", datetime.fromtimestamp(exp, UTC))
    assert principal.is_admin
    with pytest.raises(AttributeError):
        principal.role = "user"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": int(time.time()) - 60}, "token expired"),
        ({"aud": "somebody-else"}, "token invalid"),
        ({"iss": "evil-auth"}, "token invalid"),
        ({"sid": None}, "token invalid"),
        ({"sub": None}, "token invalid"),
        ({"exp": None}, "token invalid"),
        ({"role": "root"}, "token invalid"),
        ({"sub": 42}, "token invalid"),
        ({"iat": int(time.time()) + 600}, "token invalid"),
        ({"exp": int(time.time()) + 3600}, "token lifetime too long"),
    ],
)
async def test_bad_claims_are_refused(overrides: dict[str, Any], reason: str) -> None:
    signer = Signer()
    verifier = Verifier(KeySet(jwks=jwks(signer)))
    with pytest.raises(InvalidToken) as refused:
        await verifier.verify(signer.token(**overrides))
    assert refused.value.reason == reason


async def test_expiry_has_a_small_leeway() -> None:
    signer = Signer()
    verifier = Verifier(KeySet(jwks=jwks(signer)), leeway_s=10)
    now = int(time.time())
    assert await verifier.verify(signer.token(iat=now - 900, exp=now - 5))
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(signer.token(iat=now - 900, exp=now - 30))


async def test_a_token_signed_by_another_key_with_a_known_kid_is_refused() -> None:
    trusted, impostor = Signer(), Signer()
    impostor.kid = trusted.kid
    verifier = Verifier(KeySet(jwks=jwks(trusted)))
    with pytest.raises(InvalidToken, match="token invalid"):
        await verifier.verify(impostor.token())


async def test_alg_none_is_refused() -> None:
    signer = Signer()
    verifier = Verifier(KeySet(jwks=jwks(signer)))
    for alg in ("none", "None", "NONE"):
        with pytest.raises(InvalidToken, match="unsupported token algorithm"):
            await verifier.verify(unsigned({"alg": alg, "kid": signer.kid}, claims()))
    # and "EdDSA" in the header with the signature stripped
    stripped = signer.token().rsplit(".", 1)[0] + "."
    with pytest.raises(InvalidToken):
        await verifier.verify(stripped)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
async def test_hmac_with_the_public_key_as_secret_is_refused(alg: str) -> None:
    # the classic confusion attack: a verifier that lets the header pick the algorithm would
    # check this HMAC with the (public) verification key as the shared secret
    signer = Signer()
    verifier = Verifier(KeySet(jwks=jwks(signer)))
    for secret in (signer.public_raw(), signer.public_pem()):
        forged = hmac_signed({"alg": alg, "kid": signer.kid, "typ": "JWT"}, claims(), secret)
        with pytest.raises(InvalidToken, match="unsupported token algorithm"):
            await verifier.verify(forged)


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", "a.b", "....", "eyJhbGciOiJFZERTQSJ9.e30.", "\u00e9.\u00e9.\u00e9"],
)
async def test_garbage_is_refused(token: str) -> None:
    verifier = Verifier(KeySet(jwks=jwks(Signer())))
    with pytest.raises(InvalidToken):
        await verifier.verify(token)


async def test_a_token_without_a_kid_is_refused() -> None:
    signer = Signer()
    verifier = Verifier(KeySet(jwks=jwks(signer)))
    with pytest.raises(InvalidToken, match="names no signing key"):
        await verifier.verify(jwt.encode(claims(), signer.private, algorithm="EdDSA"))
    with pytest.raises(InvalidToken, match="names no signing key"):
        await verifier.verify(signer.token(headers={"kid": ""}))


async def test_the_jwks_is_fetched_lazily_once_and_reused() -> None:
    signer, clock = Signer(), Clock()
    server = JwksServer(jwks(signer))
    verifier = Verifier(server.keyset(clock))
    assert server.calls == 0  # no I/O when built

    for _ in range(5):
        assert (await verifier.verify(signer.token())).user_id == "user-1"
    assert server.calls == 1


async def test_an_unknown_kid_triggers_a_reload_so_a_rotated_key_is_accepted() -> None:
    old, new, clock = Signer(), Signer(), Clock()
    server = JwksServer(jwks(old))
    verifier = Verifier(server.keyset(clock, min_refresh_interval_s=10))
    await verifier.verify(old.token())

    clock.now += 11
    server.document = jwks(new, old)  # the auth service rotated: current + previous key
    assert (await verifier.verify(new.token())).user_id == "user-1"
    assert (await verifier.verify(old.token())).user_id == "user-1"
    assert server.calls == 2


async def test_unknown_kids_cannot_hammer_the_auth_service() -> None:
    signer, clock = Signer(), Clock()
    server = JwksServer(jwks(signer))
    verifier = Verifier(server.keyset(clock, min_refresh_interval_s=10))
    await verifier.verify(signer.token())

    clock.now += 11
    strangers = [Signer() for _ in range(50)]
    results = await asyncio.gather(
        *(verifier.verify(s.token()) for s in strangers), return_exceptions=True
    )
    assert all(isinstance(r, InvalidToken) for r in results)
    assert server.calls == 2  # one reload for the whole flood

    clock.now += 5
    with pytest.raises(InvalidToken, match="unknown key"):
        await verifier.verify(Signer().token())
    assert server.calls == 2  # still within the throttle

    # a rotation inside the throttle window is picked up once the window has passed
    rotated = Signer()
    server.document = jwks(rotated, signer)
    with pytest.raises(InvalidToken, match="unknown key"):
        await verifier.verify(rotated.token())
    clock.now += 10
    assert await verifier.verify(rotated.token())
    assert server.calls == 3


async def test_a_failed_reload_keeps_the_known_keys() -> None:
    signer, clock = Signer(), Clock()
    server = JwksServer(jwks(signer))
    keys = server.keyset(clock, min_refresh_interval_s=10, max_age_s=60)
    verifier = Verifier(keys)
    await verifier.verify(signer.token())

    server.status = 503
    clock.now += 61  # stale: a reload is attempted, fails, the old key still works
    assert await verifier.verify(signer.token())
    assert server.calls == 2
    assert await keys.refresh() is False


async def test_a_withdrawn_key_stops_working_after_max_age() -> None:
    withdrawn, current, clock = Signer(), Signer(), Clock()
    server = JwksServer(jwks(withdrawn))
    verifier = Verifier(server.keyset(clock, max_age_s=60))
    await verifier.verify(withdrawn.token())

    server.document = jwks(current)
    clock.now += 30
    assert await verifier.verify(withdrawn.token())  # still cached
    clock.now += 31
    with pytest.raises(InvalidToken, match="unknown key"):
        await verifier.verify(withdrawn.token())
    assert await verifier.verify(current.token())


async def test_non_ed25519_entries_of_a_jwks_are_ignored() -> None:
    signer = Signer()
    document = jwks(signer)
    document["keys"] += [
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "OKP", "crv": "X25519", "kid": "x", "x": signer.jwk()["x"]},
        {"kty": "OKP", "crv": "Ed25519", "kid": "broken", "x": "!!"},
        {**signer.jwk(), "kid": "enc", "use": "enc"},
        "not a key",
    ]
    keys = KeySet(jwks=document)
    assert keys.kids == {signer.kid}
    with pytest.raises(InvalidToken, match="unknown key"):
        await Verifier(keys).verify(Signer(kid="hmac").token())


def test_a_keyset_needs_a_source() -> None:
    with pytest.raises(ValueError, match="url or a JWKS"):
        KeySet()


async def test_a_verified_token_is_served_from_the_cache_until_it_expires() -> None:
    signer = Signer()
    verifier = Verifier(KeySet(jwks=jwks(signer)))
    token = signer.token(exp=int(time.time()) + 2)
    first = await verifier.verify(token)
    assert await verifier.verify(token) is first  # no second signature check
    verifier.leeway_s = 0
    await asyncio.sleep(2.1)
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(token)


async def test_auth_time_says_how_fresh_the_login_is() -> None:
    """`auth_time` (the login, unchanged by refreshes) becomes Principal.auth_time; a token
    without it is never fresh; one claiming a login after its own issue is refused."""
    signer = Signer()
    verifier = Verifier(KeySet(jwks=jwks(signer)))
    now = int(time.time())
    recent = await verifier.verify(signer.token(auth_time=now - 60))
    assert recent.auth_time == datetime.fromtimestamp(now - 60, UTC)
    assert recent.authenticated_within(300)
    old = await verifier.verify(signer.token(sub="u-2", auth_time=now - 301))
    assert not old.authenticated_within(300)
    assert not (await verifier.verify(signer.token(sub="u-3"))).authenticated_within(300)
    for bad in (now + 600, "yesterday", True):
        with pytest.raises(InvalidToken):
            await verifier.verify(signer.token(sub="u-4", auth_time=bad))
