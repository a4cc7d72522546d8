"""Read-your-writes through the gateway: a command's X-Consistency-Token makes the next GET see
that command's effect, every time (DESIGN.md 1 and 5)."""

from __future__ import annotations

import uuid

import httpx


async def test_command_then_immediate_get_sees_the_write_100_times(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
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


async def test_reads_are_problem_json_on_bad_input(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
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


async def test_an_unreachable_version_is_503_not_stale_data(gateway_url: str) -> None:
    from parley_http.consistency import ConsistencyToken

    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        user_id = str(uuid.uuid4())
        created = await client.post(
            "/v1/users", json={"user_id": user_id, "name": "Ada", "email": "ada@example.test"}
        )
        assert created.status_code == 201
        future = ConsistencyToken("users", user_id, 99).encode()  # a version never written
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
