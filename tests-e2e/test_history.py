"""History and time travel through the gateway (issue 10, second half): nginx routes the
command side's GETs `<aggregate>/events` and `<aggregate>/state?at=` to the owning service,
which reads its event store; only the owner, a participant or an admin may look."""

from __future__ import annotations

import httpx
from parley_testing.accounts import Account, sign_up


async def test_a_profile_history_and_its_past_state(gateway_url: str, user: Account) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10, headers=user.headers) as c:
        for bio in ("first", "second"):
            assert (
                await c.patch(f"/v1/users/{user.user_id}", json={"bio": bio})
            ).status_code == 200
        events = (await c.get(f"/v1/users/{user.user_id}/events")).json()["items"]
        assert [e["type"] for e in events][-2:] == ["UserProfileUpdated", "UserProfileUpdated"]
        version = events[-2]["version"]
        past = await c.get(f"/v1/users/{user.user_id}/state", params={"at": str(version)})
        assert past.status_code == 200, past.text
        assert past.json()["state"]["profile"]["bio"] == "first"


async def test_a_conversation_history_is_for_its_participants(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        ada = await sign_up(client, "Ada")
        eve = await sign_up(client, "Eve")
        created = await client.post(
            "/v1/conversations",
            json={"participant_ids": [eve.user_id], "title": "t"},
            headers=ada.headers,
        )
        cid = created.json()["id"]
        sent = await client.post(
            f"/v1/conversations/{cid}/messages", json={"content": "hi"}, headers=ada.headers
        )
        assert sent.status_code == 201, sent.text
        events = await client.get(f"/v1/conversations/{cid}/events", headers=ada.headers)
        assert [e["type"] for e in events.json()["items"]] == ["ConversationCreated", "MessageSent"]
        at_one = await client.get(
            f"/v1/conversations/{cid}/state", params={"at": "1"}, headers=eve.headers
        )
        assert at_one.status_code == 200 and at_one.json()["version"] == 1
        stranger = await sign_up(client, "Mallory")
        hidden = await client.get(f"/v1/conversations/{cid}/events", headers=stranger.headers)
        assert hidden.status_code == 404
