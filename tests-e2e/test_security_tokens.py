"""Issue 19 item 5 through nginx: tokens a client holds open only what they were issued for.

Forged consistency tokens are ignored. Before, a token was unsigned base64 JSON: anyone could
name any conversation and a version, and the gateway waited up to 2 s for it (a 503 when the
version was never written, a 200 at once when it was), which told a stranger the conversation's
event count and let them tie up the gateway. Now a token counts only when it is signed with the
command side's secret for the caller presenting it; anything else answers exactly like no token
(same status and body, no wait). The caller's own token still gives read-your-writes.

`GET /v1/registrations/{id}` needs the registration token register returned: without it, or
with a wrong one, the 404 of an unknown id (the id is the account id, which others see).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
from parley_http.consistency import ConsistencyToken
from parley_testing.accounts import (
    PASSWORD,
    Account,
    new_address,
    registration_settled,
    sign_up,
)

TOKEN = "X-Consistency-Token"
# A token that counted for a version never written would make the gateway wait
# (QUERY_CONSISTENCY_WAIT_S, 2 s) and then answer 503 + Retry-After: the answers below equal
# the tokenless ones only if the forged tokens were ignored. (Their times are reported, not
# bounded: on a loaded two-replica cluster a plain read can take longer than the wait.)
NEVER_WRITTEN = 10**6


def unsigned_v1(context: str, stream: str, version: int) -> str:
    """The retired token shape: anyone could write one."""
    raw = json.dumps({"t": 1, "c": context, "s": stream, "v": version}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def with_version(token: str, version: int) -> str:
    """`token`'s payload with another version, its mac kept (a forgery of a real token)."""
    payload, _, mac = token.partition(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=="))
    data["v"] = version
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=") + "." + mac


async def timed_get(
    client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await client.get(path, headers=headers)
    return response, time.perf_counter() - started


def shown(response: httpx.Response) -> tuple[int, Any]:
    return response.status_code, response.json()


async def test_forged_consistency_tokens_are_ignored_and_own_tokens_still_work(
    gateway_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        ada = await sign_up(client, "Ada")
        cid_of_bob = await sign_up(client, "Cid")
        eve = await sign_up(client, "Eve")  # the stranger probing Ada's conversation
        created = await client.post(
            "/v1/conversations",
            json={"participant_ids": [cid_of_bob.user_id], "title": "private"},
            headers=ada.headers,
        )
        assert created.status_code == 201, created.text
        conversation = created.json()["id"]
        sent = await client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"content": "just us"},
            headers=ada.headers,
        )
        assert sent.status_code == 201, sent.text
        adas_token = sent.headers[TOKEN]
        assert ConsistencyToken.decode(adas_token).stream_id == conversation

        written = ConsistencyToken.decode(adas_token).version
        forged = {
            "Ada's real token": adas_token,
            "Ada's token, version raised": with_version(adas_token, NEVER_WRITTEN),
            "unsigned v1, a version written": unsigned_v1("chat", conversation, written),
            "unsigned v1, a version never written": unsigned_v1(
                "chat", conversation, NEVER_WRITTEN
            ),
            "v2 for Eve with a guessed secret": ConsistencyToken(
                "chat", conversation, NEVER_WRITTEN, eve.user_id
            ).sign("parley-dev-consistency-secret"),
            "v2 for Eve without a mac": ConsistencyToken(
                "chat", conversation, NEVER_WRITTEN, eve.user_id
            )
            .sign("x")
            .partition(".")[0],
        }
        # the messages of the conversation: Eve's 404, token or not (the route checks the token
        # before the membership: a token that counted would wait and end in a 503)
        path = f"/v1/conversations/{conversation}/messages"
        plain, _ = await timed_get(client, path, eve.headers)
        assert plain.status_code == 404, plain.text
        for name, token in forged.items():
            answer, took = await timed_get(client, path, {**eve.headers, TOKEN: token})
            assert shown(answer) == shown(plain), (name, answer.text, took)
        # Eve's own lists answer as without a token (no timing bound here: these list queries
        # alone take 1-2.5 s on the shared local cluster; one that waited would end in 503)
        for route in ("/v1/conversations", "/v1/conversations/unread-count"):
            plain, _ = await timed_get(client, route, eve.headers)
            assert plain.status_code == 200, plain.text
            for name, token in forged.items():
                answer, _ = await timed_get(client, route, {**eve.headers, TOKEN: token})
                assert shown(answer) == shown(plain), (route, name, answer.text)

        # Ada's own token is honoured: each write is read back at once, 20 times
        for i in range(20):
            sent = await client.post(
                f"/v1/conversations/{conversation}/messages",
                json={"content": f"note {i}"},
                headers=ada.headers,
            )
            assert sent.status_code == 201, sent.text
            page = await client.get(path, headers={**ada.headers, TOKEN: sent.headers[TOKEN]})
            assert page.status_code == 200, page.text
            assert page.json()["items"][0]["content"] == f"note {i}", f"stale read at {i}"
        # her last token with its version raised past what was written: a 503 if it counted
        raised = with_version(sent.headers[TOKEN], NEVER_WRITTEN)
        answer, took = await timed_get(client, path, {**ada.headers, TOKEN: raised})
        assert answer.status_code == 200, (answer.text, took)


async def register(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post(
        "/v1/auth/register",
        json={"email": new_address("regtoken"), "password": PASSWORD, "name": "Reg"},
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body["registration_token"], str) and len(body["registration_token"]) >= 22
    return body


async def test_the_registration_status_needs_the_registration_token(
    gateway_url: str, user: Account
) -> None:
    """Decided: 404 like an unknown id (not 401/403), so the route tells nothing about which
    ids exist; the id is an account id others see in profiles and conversations."""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        mine, other = await register(client), await register(client)
        reg_id, token = mine["user_id"], mine["registration_token"]
        assert await registration_settled(client, reg_id, token=token) in (
            "completed",
            "compensated",
            "failed",
        )

        def registration(rid: str, headers: dict[str, str]) -> Any:
            return client.get(f"/v1/registrations/{rid}", headers=headers)

        unknown = await registration(str(uuid.uuid4()), {"X-Registration-Token": token})
        assert unknown.status_code == 404
        expected = {**unknown.json(), "instance": None}
        refused = {
            "no token": {},
            "a wrong token": {"X-Registration-Token": "A" * 22},
            "another registration's token": {"X-Registration-Token": other["registration_token"]},
            "a signed-in user, no token": user.headers,
            "the token in the query": {},
        }
        for name, headers in refused.items():
            query = f"?token={token}" if name == "the token in the query" else ""
            answer = await registration(reg_id + query, headers)
            assert answer.status_code == 404, (name, answer.text)
            assert answer.headers["content-type"] == "application/problem+json", name
            assert {**answer.json(), "instance": None} == expected, name
        # a registration of someone else (the signed-in user's own, done by sign_up) as well
        other_user = await registration(user.user_id, {"X-Registration-Token": token})
        assert other_user.status_code == 404

        answer = await registration(reg_id, {"X-Registration-Token": token})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["id"] == reg_id
        assert body["status"] in ("completed", "compensated", "failed")
        assert body["history"] and all(set(h) == {"step", "event", "at"} for h in body["history"])


async def test_forged_profile_tokens_are_ignored_too(gateway_url: str) -> None:
    """The users context alike, on a route that answers in milliseconds: Eve presenting tokens
    of Ada's profile stream (Ada's real one, raised, unsigned) reads her own profile as
    without a token and at once; Ada's token makes Ada's next read see her edit."""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        ada, eve = await sign_up(client, "Ada"), await sign_up(client, "Eve")
        patched = await client.patch(
            f"/v1/users/{ada.user_id}", json={"bio": "edited"}, headers=ada.headers
        )
        assert patched.status_code == 200, patched.text
        adas_token = patched.headers[TOKEN]
        seen = await client.get("/v1/users/me", headers={**ada.headers, TOKEN: adas_token})
        assert seen.status_code == 200 and seen.json()["bio"] == "edited"

        forged = {
            "Ada's real token": adas_token,
            "Ada's token, version raised": with_version(adas_token, NEVER_WRITTEN),
            "unsigned v1 of Ada's profile": unsigned_v1("users", ada.user_id, NEVER_WRITTEN),
            "v2 for Eve with a guessed secret": ConsistencyToken(
                "users", ada.user_id, NEVER_WRITTEN, eve.user_id
            ).sign("parley-dev-consistency-secret"),
        }
        plain, _ = await timed_get(client, "/v1/users/me", eve.headers)
        assert plain.status_code == 200, plain.text
        for path in ("/v1/users/me", f"/v1/users/{ada.user_id}"):
            plain, _ = await timed_get(client, path, eve.headers)
            for name, token in forged.items():
                answer, took = await timed_get(client, path, {**eve.headers, TOKEN: token})
                assert shown(answer) == shown(plain), (path, name, answer.text, took)
