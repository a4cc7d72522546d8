"""Hostile input through nginx to every public route the services publish (their OpenAPI
documents under /openapi/): NUL characters, lone surrogates, bytes that are not UTF-8,
megabyte strings, deep JSON, wrong types and forged opaque tokens (parley_testing.hostile).
Never a 5xx; every 4xx a service answers is problem+json (nginx answers some hostile URLs,
headers and bodies itself, with its own page: 400, 413, 414).

Two walks, neither of which may run a command (the cluster is shared: its data stays, the
caller stays signed in, no failed login is counted against 127.0.0.1): every value with bodies
that carry only the field under test (a wrong type then fails validation), headers only
hostile values and random ids; and only the hostile values, each in an otherwise plausible
request (a NUL in the email of a valid login was the 500 that started this)."""

from __future__ import annotations

import httpx
import pytest
from parley_testing.accounts import Account, new_address
from parley_testing.hostile import operations_from_openapi, walk

pytestmark = pytest.mark.e2e

DOCUMENTS = ("auth", "users", "chat", "notifications", "query", "registration")
FAMILIES = {
    "POST /v1/auth/login",
    "POST /v1/auth/verify-otp",
    "POST /v1/auth/password-reset",
    "POST /v1/auth/password-reset/confirm",
    "POST /v1/auth/introspect",
    "GET /v1/auth/me",
    "GET /.well-known/jwks.json",
    "POST /v1/users",
    "PATCH /v1/users/{user_id}",
    "GET /v1/users/{user_id}/events",
    "GET /v1/users",
    "GET /v1/users/by-email/{email}",
    "GET /v1/stats/roles",
    "POST /v1/conversations/{conversation_id}/messages",
    "GET /v1/conversations/{conversation_id}/messages",
    "GET /v1/messages/search",
    "PUT /v1/notifications/preferences",
    "GET /v1/notifications",
    "GET /v1/registrations/{registration_id}",
}
SAMPLES = {
    "password": "correct-horse-42",
    "new_password": "another-horse-43",
    "name": "Nobody",
    "code": "123456",
    "content": "hello",
    "at": "1",
    "q": "ada",
}


def nginx_page(failure: str) -> bool:
    # the services answer JSON only; nginx's own error pages are HTML
    return "content-type 'text/html'" in failure


async def test_hostile_input_through_nginx_is_never_a_5xx(gateway_url: str, user: Account) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        operations = []
        for name in DOCUMENTS:
            document = await client.get(f"/openapi/{name}.json")
            assert document.status_code == 200, name
            operations += operations_from_openapi(document.json())
        assert {op.name for op in operations} >= FAMILIES

        # addresses of nobody, new each run: were a hostile request to run after all, it
        # would throttle or register an address no one uses
        samples = {**SAMPLES, "email": new_address("hostile"), "new_email": new_address("hostile")}
        everything = await walk(
            client,
            operations,
            user.headers,
            samples,
            problem_json=False,  # nginx's own refusals are HTML: told apart below
            concurrency=8,
            full_bodies=False,
            wrong_headers=False,
            over_the_wire=True,
        )
        hostile_in_plausible = await walk(
            client,
            operations,
            user.headers,
            samples,
            problem_json=False,
            concurrency=8,
            only_hostile=True,
            over_the_wire=True,
        )

        reports = (everything, hostile_in_plausible)
        failures = [f for r in reports for f in r.failures]
        failures += [f for r in reports for f in r.not_problem if not nginx_page(f)]
        assert failures == [], "\n".join(failures[:80])
        # a read-model store timing out is not the input's doing: the plain request of the
        # route got its 503 too (walk); it must not be all there is to see
        for report in reports:
            assert len(report.unavailable) < report.sent // 10, report.summary()
        assert everything.sent > 3000, everything.summary()
        assert hostile_in_plausible.sent > 1000, hostile_in_plausible.summary()
        # the caller is still signed in: the walks ran no command that could change that
        assert (await client.get("/v1/users/me", headers=user.headers)).status_code == 200
