"""Logs never carry secrets (issue 7): after a sign-up (password, mailed code), a login
(access and refresh tokens), a profile edit and a chat message, no log of the cluster contains
any of them (nor the profile or message text)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from parley_testing.accounts import PASSWORD, code_mailed_to, login, sign_up

LOGS = Path(os.environ.get("PARLEY_STATE_DIR", ".local")) / "logs"


async def test_no_password_code_or_token_in_any_log(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        account = await sign_up(client, "Secretive")
        code = await code_mailed_to(account.email)
        response = await client.post(
            "/v1/auth/login", json={"email": account.email, "password": PASSWORD}
        )
        pair = response.json()
        again = await login(client, account.email)
        bio = "my private bio 7c1e"
        patched = await client.patch(
            f"/v1/users/{account.user_id}",
            json={"bio": bio},
            headers={"Authorization": f"Bearer {again}"},
        )
        assert patched.status_code == 200
        friend = await sign_up(client, "Friend")
        conversation = await client.post(
            "/v1/conversations",
            json={"participant_ids": [friend.user_id], "title": "secrets"},
            headers={"Authorization": f"Bearer {again}"},
        )
        text = "the message text 5f2a must stay out of logs"
        sent = await client.post(
            f"/v1/conversations/{conversation.json()['id']}/messages",
            json={"content": text},
            headers={"Authorization": f"Bearer {again}"},
        )
        assert sent.status_code == 201, sent.text
    secrets = {
        "password": PASSWORD,
        "code": code,
        "access token": pair["access_token"],
        "refresh token": pair["refresh_token"],
        "second access token": again,
        "profile text": bio,
        "message text": text,
    }
    logs = sorted(LOGS.glob("*.log"))
    assert logs, f"no logs in {LOGS}"
    for path in logs:
        text = path.read_text(errors="replace")
        leaked = [name for name, secret in secrets.items() if secret in text]
        assert not leaked, f"{path.name} logs the {', '.join(leaked)}"
