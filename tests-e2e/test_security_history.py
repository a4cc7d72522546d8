"""Issue 19.5 through the gateway: what a conversation's history shows to whom. A member's
history starts when they joined, deleted messages' texts are gone from it, reports are not in
it; a stranger gets 404 exactly as for a made-up id; admins see the history as recorded."""

from __future__ import annotations

import json
import uuid

import httpx
from parley_testing.accounts import Account, sign_up


async def test_history_shows_members_only_what_they_may_see(
    gateway_url: str, admin: Account
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        ada, bob, cy, eve = [await sign_up(client, n) for n in ("Ada", "Bob", "Cy", "Eve")]
        created = await client.post(
            "/v1/conversations",
            json={"participant_ids": [bob.user_id], "title": "before cy"},
            headers=ada.headers,
        )
        cid = created.json()["id"]
        url = f"/v1/conversations/{cid}"
        early = await client.post(f"{url}/messages", json={"content": "early"}, headers=ada.headers)
        added = await client.post(
            f"{url}/participants", json={"user_id": cy.user_id}, headers=ada.headers
        )
        joined_at = added.json()["version"]
        gone = await client.post(f"{url}/messages", json={"content": "oops"}, headers=ada.headers)
        deleted = await client.delete(f"{url}/messages/{gone.json()['id']}", headers=ada.headers)
        assert deleted.status_code == 200, deleted.text
        kept = await client.post(f"{url}/messages", json={"content": "kept"}, headers=bob.headers)
        reported = await client.post(
            f"{url}/messages/{kept.json()['id']}/report",
            json={"reason": "cy reports bob"},
            headers=cy.headers,
        )
        assert reported.status_code == 201, reported.text

        seen_by_cy = (await client.get(f"{url}/events", headers=cy.headers)).json()["items"]
        assert seen_by_cy[0]["version"] == joined_at
        text = json.dumps(seen_by_cy)
        assert early.json()["id"] not in text and "oops" not in text
        assert "MessageReported" not in text and "cy reports bob" not in text
        assert "kept" in text
        before = await client.get(f"{url}/state", params={"at": joined_at - 1}, headers=cy.headers)
        assert before.status_code == 404

        seen_by_ada = json.dumps((await client.get(f"{url}/events", headers=ada.headers)).json())
        assert "early" in seen_by_ada and "oops" not in seen_by_ada
        assert "MessageReported" not in seen_by_ada

        audited = json.dumps((await client.get(f"{url}/events", headers=admin.headers)).json())
        assert "MessageReported" in audited and "early" in audited

        stranger = await client.get(f"{url}/events", headers=eve.headers)
        made_up = await client.get(f"/v1/conversations/{uuid.uuid4()}/events", headers=eve.headers)
        assert stranger.status_code == made_up.status_code == 404
        assert stranger.headers["content-type"] == made_up.headers["content-type"]
