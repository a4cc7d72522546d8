"""Issue 11, users part, through the gateway as clients see it: contacts (self or admin),
status changes and role assignment (admins), the auth role mirrored into the users read
model, search by name (accent-insensitive) and, for admins, by address, lookup by email, role
statistics. Every command's X-Consistency-Token makes the next GET see it."""

from __future__ import annotations

import asyncio
import random
import string
import time
import uuid
from typing import Any

import httpx
from parley_testing.accounts import PASSWORD, Account, sign_up

Json = dict[str, Any]


def token_of(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {"X-Consistency-Token": response.headers["X-Consistency-Token"]}


async def eventually(fetch: Any, check: Any, wait_s: float = 15) -> Any:
    """For what has no consistency token (events mirrored from auth.events)."""
    deadline = time.monotonic() + wait_s
    while True:
        value = await fetch()
        if check(value):
            return value
        assert time.monotonic() < deadline, f"never happened; last: {value}"
        await asyncio.sleep(0.2)


async def test_contacts_through_the_gateway(
    gateway_url: str, user: Account, admin: Account
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        friend = await sign_up(client, "Friend")
        mine = user.headers
        path = f"/v1/users/{user.user_id}/contacts"
        added = await client.post(path, json={"contact_id": friend.user_id}, headers=mine)
        again = await client.post(path, json={"contact_id": friend.user_id}, headers=mine)
        assert again.json()["version"] == added.json()["version"]  # a no-op
        listed = await client.get(path, headers={**mine, **token_of(added)})
        assert listed.status_code == 200, listed.text
        assert [(c["contact_id"], c["name"]) for c in listed.json()["items"]] == [
            (friend.user_id, "Friend")
        ]

        assert (await client.get(path, headers=friend.headers)).status_code == 403
        assert (await client.get(path, headers=admin.headers)).status_code == 200
        stranger = await client.post(
            path, json={"contact_id": friend.user_id}, headers=friend.headers
        )
        assert stranger.status_code == 403
        # any id is taken (a 404 would tell unknown ids from fresh registrations) and listed
        # without a name
        nobody = str(uuid.uuid4())
        ghost = await client.post(path, json={"contact_id": nobody}, headers=mine)
        listed = await client.get(path, headers={**mine, **token_of(ghost)})
        assert (nobody, None) in [(c["contact_id"], c["name"]) for c in listed.json()["items"]]
        await client.delete(f"{path}/{nobody}", headers=mine)
        itself = await client.post(path, json={"contact_id": user.user_id}, headers=mine)
        assert itself.status_code == 422

        removed = await client.delete(f"{path}/{friend.user_id}", headers=mine)
        after = await client.get(path, headers={**mine, **token_of(removed)})
        assert after.json()["items"] == []


async def test_admins_change_status_and_roles(
    gateway_url: str, user: Account, admin: Account
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        me = f"/v1/users/{user.user_id}"
        refused = await client.post(f"{me}/deactivate", json={"reason": "x"}, headers=user.headers)
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        off = await client.post(f"{me}/deactivate", json={"reason": "spam"}, headers=admin.headers)
        seen = (await client.get(me, headers={**admin.headers, **token_of(off)})).json()
        assert (seen["status"], seen["status_reason"]) == ("deactivated", "spam")
        on = await client.post(f"{me}/reactivate", headers=admin.headers)
        seen = (await client.get(me, headers={**admin.headers, **token_of(on)})).json()
        assert seen["status"] == "active"
        # the deactivation revoked the person's sessions (auth follows the status:
        # tests-e2e/test_security_accounts.py); once auth saw the reactivation, a new login
        credentials = {"email": user.email, "password": PASSWORD}
        login = await eventually(
            lambda: client.post("/v1/auth/login", json=credentials),
            lambda response: response.status_code == 200,
        )
        user.access_token = login.json()["access_token"]
        # the admin's token counts for the admin only: the person sees the change once the
        # query gateway serving them has it (a replica's cached copy lives a second)
        own = await eventually(
            lambda: client.get("/v1/users/me", headers=user.headers),
            lambda response: response.json().get("status") == "active",
        )
        assert (own.json()["status"], own.json()["status_reason"]) == ("active", None)

        assert (
            await client.put(f"{me}/role", json={"role": "admin"}, headers=user.headers)
        ).status_code == 403
        assigned = await client.put(f"{me}/role", json={"role": "admin"}, headers=admin.headers)
        # the token counts for its writer (the admin) only
        seen = (await client.get(me, headers={**admin.headers, **token_of(assigned)})).json()
        assert seen["role"] == "admin"
        back = await client.put(f"{me}/role", json={"role": "user"}, headers=admin.headers)
        token_of(back)


async def test_the_auth_role_is_mirrored_and_counted(gateway_url: str, admin: Account) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10, headers=admin.headers) as client:
        # `parley_auth.admin grant-admin` appended RoleChanged on auth.events; users follows it
        me = await eventually(
            lambda: client.get("/v1/users/me"), lambda r: r.json().get("role") == "admin"
        )
        assert me.status_code == 200
        stats = await client.get("/v1/stats/roles")
        assert stats.status_code == 200, stats.text
        body = stats.json()
        assert body["roles"]["admin"] >= 1 and body["total"] == sum(body["roles"].values())


async def test_search_lookup_and_admin_only_reads(
    gateway_url: str, user: Account, admin: Account
) -> None:
    tag = "".join(random.choices(string.ascii_lowercase, k=10))
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        named = await sign_up(client, f"Émilie Noël{tag}")

        async def search(q: str, caller: Account) -> list[Json]:
            response = await client.get("/v1/users", params={"q": q}, headers=caller.headers)
            assert response.status_code == 200, response.text
            items: list[Json] = response.json()["items"]
            return items

        for q in (f"EMILIE NOEL{tag}", f"noël{tag[:6]}", f"Noel{tag}"):
            found = await search(q, user)
            assert [u["id"] for u in found] == [named.user_id], q
            assert found[0]["email"] is None  # another user's address stays hidden
        local = named.email.split("@")[0]
        assert await search(local, user) == []  # addresses are searched for admins only
        assert [u["id"] for u in await search(local, admin)] == [named.user_id]

        first = await client.get("/v1/users", params={"limit": 2}, headers=user.headers)
        assert len(first.json()["items"]) == 2 and first.json()["next_cursor"]
        second = await client.get(
            "/v1/users",
            params={"limit": 2, "cursor": first.json()["next_cursor"]},
            headers=user.headers,
        )
        assert second.status_code == 200
        assert not {u["id"] for u in first.json()["items"]} & {
            u["id"] for u in second.json()["items"]
        }

        lookup = f"/v1/users/by-email/{named.email.upper()}"
        assert (await client.get(lookup, headers=admin.headers)).json()["id"] == named.user_id
        assert (await client.get(lookup, headers=user.headers)).status_code == 403
        assert (await client.get("/v1/stats/roles", headers=user.headers)).status_code == 403
        assert (await client.get("/v1/stats/roles")).status_code == 401
