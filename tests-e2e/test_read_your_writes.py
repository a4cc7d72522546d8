"""Read-your-writes through the gateway: a command's X-Consistency-Token makes the next GET see
that command's effect, every time (DESIGN.md 1 and 5)."""

from __future__ import annotations

import uuid

import httpx
from parley_testing.accounts import Account, local_secret


async def test_command_then_immediate_get_sees_the_write_100_times(
    gateway_url: str, admin: Account
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10, headers=admin.headers) as client:
        user_id = str(uuid.uuid4())
        created = await client.post(
            "/v1/users", json={"user_id": user_id, "name": "Ada", "email": "ada@example.test"}
        )
        assert created.status_code == 201
        token = created.headers["X-Consistency-Token"]
        first = await client.get(f"/v1/users/{user_id}", headers={"X-Consistency-Token": token})
        assert first.status_code == 200, first.text
        assert first.json()["name"] == "Ada"
        for i in range(100):
            patched = await client.patch(f"/v1/users/{user_id}", json={"bio": f"edit {i}"})
            assert patched.status_code == 200
            token = patched.headers["X-Consistency-Token"]
            seen = await client.get(f"/v1/users/{user_id}", headers={"X-Consistency-Token": token})
            assert seen.status_code == 200, seen.text
            assert seen.json()["bio"] == f"edit {i}", f"stale read at edit {i}"


async def test_reads_are_problem_json_on_bad_input(gateway_url: str, admin: Account) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10, headers=admin.headers) as client:
        missing = await client.get(f"/v1/users/{uuid.uuid4()}")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        bad_id = await client.get("/v1/users/not-a-uuid")
        assert bad_id.status_code == 422
        bad_token = await client.get(
            f"/v1/users/{uuid.uuid4()}", headers={"X-Consistency-Token": "garbage"}
        )
        assert bad_token.status_code == 400
        assert bad_token.headers["content-type"] == "application/problem+json"


async def test_an_unreachable_version_is_503_not_stale_data(
    gateway_url: str, admin: Account
) -> None:
    from parley_http.consistency import ConsistencyToken

    async with httpx.AsyncClient(base_url=gateway_url, timeout=10, headers=admin.headers) as client:
        user_id = str(uuid.uuid4())
        created = await client.post(
            "/v1/users", json={"user_id": user_id, "name": "Ada", "email": "ada@example.test"}
        )
        assert created.status_code == 201
        # a version never written, in a token signed for the admin as users-api would
        secret = local_secret("consistency-secret")
        future = ConsistencyToken("users", user_id, 99, admin.user_id).sign(secret)
        response = await client.get(f"/v1/users/{user_id}", headers={"X-Consistency-Token": future})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.headers["content-type"] == "application/problem+json"


async def test_gateway_publishes_each_services_openapi(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        for service, path in (("users", "/v1/users/{user_id}"), ("query", "/v1/users/{user_id}")):
            response = await client.get(f"/openapi/{service}.json")
            assert response.status_code == 200, service
            assert path in response.json()["paths"], service


async def test_sign_up_then_profile_edit_is_read_back_and_users_stay_apart(
    gateway_url: str, user: Account, admin: Account
) -> None:
    """The account journey of issue 11: register -> mailed code -> verify -> login (the
    fixture) -> `GET /v1/users/me` shows the profile; PATCH then an immediate GET with the
    token shows the change; another user may read the profile but not its email, nor edit it."""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        me = await client.get("/v1/users/me", headers=user.headers)
        assert me.status_code == 200, me.text
        assert me.json()["id"] == user.user_id and me.json()["email"] == user.email
        patched = await client.patch(
            f"/v1/users/{user.user_id}", json={"bio": "hello"}, headers=user.headers
        )
        assert patched.status_code == 200, patched.text
        token = {"X-Consistency-Token": patched.headers["X-Consistency-Token"]}
        seen = await client.get("/v1/users/me", headers={**user.headers, **token})
        assert seen.json()["bio"] == "hello"

        other = await client.get(f"/v1/users/{admin.user_id}", headers=user.headers)
        assert other.status_code == 200 and other.json()["email"] is None
        forbidden = await client.patch(
            f"/v1/users/{admin.user_id}", json={"bio": "pwned"}, headers=user.headers
        )
        assert forbidden.status_code == 403
        assert (await client.get("/v1/users/me")).status_code == 401
