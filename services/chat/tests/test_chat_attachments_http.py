"""The attachment routes over stand-ins (no server): who gets an upload URL and who a download
redirect, how refusals and an unreachable store answer, and the scoped Idempotency-Key the
store receives. The store's own rules (claim, expiry) are the integration tests'."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from parley_authn import install_authn
from parley_chat import http
from parley_chat.attachments import Attachment, Limits, Upload
from parley_chat.attachments_config import AttachmentSettings
from parley_chat.bootstrap import bootstrap
from parley_chat.config import Settings
from parley_chat.handlers import BUS, Chat
from parley_chat.storage import StorageUnavailable
from parley_commandkit import Commands
from parley_privacy.memory import MemoryKeys
from parley_testing.tokens import Signer, jwks

SIGNER = Signer()
ADA, BOB, EVE = (str(uuid.uuid4()) for _ in range(3))
CID = str(uuid.uuid4())


def bearer(user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SIGNER.token(sub=user_id)}"}


@dataclass
class FakeConversation:
    participants: set[str]

    @property
    def exists(self) -> bool:
        return bool(self.participants)

    def is_participant(self, user_id: str) -> bool:
        return user_id in self.participants


@dataclass
class FakeConversations:
    by_id: dict[str, FakeConversation]

    async def load(self, conversation_id: str) -> FakeConversation:
        return self.by_id.get(conversation_id, FakeConversation(set()))


@dataclass
class FakeAttachments:
    found: dict[str, Attachment] = field(default_factory=dict)
    keys: list[str | None] = field(default_factory=list)
    down: bool = False
    limits: Limits = field(default_factory=lambda: Limits.of(AttachmentSettings()))

    async def request_upload(
        self, cid: str, who: str, name: str, kind: str, size: int, key: str | None = None
    ) -> Upload:
        self.limits.check(name, kind, size)
        if self.down:
            raise StorageUnavailable("connection refused")
        self.keys.append(key)
        return Upload(str(uuid.uuid4()), "http://s3.test/put?sig", kind, size, 900)

    async def get(self, attachment_id: str) -> Attachment | None:
        return self.found.get(attachment_id)

    async def download_url(self, attachment: Attachment) -> str:
        if self.down:
            raise StorageUnavailable("connection refused")
        return f"http://s3.test/{attachment.object_key}?sig"


def attachment(sent: bool, uploader: str = ADA) -> Attachment:
    aid = str(uuid.uuid4())
    return Attachment(
        id=aid,
        conversation_id=CID,
        uploader_id=uploader,
        filename="a.pdf",
        content_type="application/pdf",
        size=10,
        object_key=f"{CID}/{aid}",
        created_at=datetime.now(UTC),
        message_id=str(uuid.uuid4()) if sent else None,
        sent=sent,
    )


@pytest.fixture
def store() -> FakeAttachments:
    return FakeAttachments()


@pytest.fixture
async def client(store: FakeAttachments) -> Any:
    app = bootstrap(Settings(jwks=json.dumps(jwks(SIGNER))), keys=MemoryKeys())
    install_authn(app, app.state.authn.verifier, None)  # no revocation list: no Kafka
    chat: Any = Chat(FakeConversations({CID: FakeConversation({ADA, BOB})}))  # type: ignore[arg-type]
    app.state.chat = chat
    app.state.commands = Commands(http.CONTEXT, BUS, chat, http.ERRORS)
    app.state.attachments = store
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://chat") as c:
        yield c


UPLOAD = {"filename": "a.pdf", "content_type": "application/pdf", "size": 10}


async def test_participants_get_an_upload_url_strangers_a_404(
    client: httpx.AsyncClient, store: FakeAttachments
) -> None:
    url = f"/v1/conversations/{CID}/attachments"
    ok = await client.post(url, json=UPLOAD, headers={**bearer(ADA), "Idempotency-Key": "k1"})
    assert ok.status_code == 201, ok.text
    body = ok.json()
    assert body["upload_url"] == "http://s3.test/put?sig" and body["method"] == "PUT"
    assert body["headers"] == {"Content-Type": "application/pdf", "Content-Length": "10"}
    # the key the store keeps is scoped to the route, the conversation and the caller
    assert store.keys == [f"chat.attach:{CID}:{ADA}:k1"]

    for who, conversation in ((EVE, CID), (ADA, str(uuid.uuid4()))):
        refused = await client.post(
            f"/v1/conversations/{conversation}/attachments", json=UPLOAD, headers=bearer(who)
        )
        assert refused.status_code == 404, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    assert (await client.post(url, json=UPLOAD)).status_code == 401
    assert len(store.keys) == 1  # nothing reached the store for them


async def test_an_upload_outside_the_limits_is_a_422_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    url = f"/v1/conversations/{CID}/attachments"
    for body, where in (
        ({**UPLOAD, "content_type": "text/html"}, "content_type"),
        ({**UPLOAD, "size": 26 * 1024 * 1024}, "size"),
        ({**UPLOAD, "filename": "a/b.pdf"}, "filename"),
        ({**UPLOAD, "size": 0}, "size"),
        ({**UPLOAD, "extra": 1}, "extra"),
    ):
        r = await client.post(url, json=body, headers=bearer(ADA))
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert where in r.text


async def test_a_download_redirects_participants_once_sent_and_its_uploader_before(
    client: httpx.AsyncClient, store: FakeAttachments
) -> None:
    unsent, sent = attachment(sent=False), attachment(sent=True)
    gone_uploader = attachment(sent=True, uploader=EVE)  # EVE sent it, then left
    store.found = {a.id: a for a in (unsent, sent, gone_uploader)}

    def get(aid: str, who: str) -> Any:
        return client.get(f"/v1/attachments/{aid}", headers=bearer(who))

    cases = [
        (unsent, ADA, 307),  # its uploader, before a message carries it
        (unsent, BOB, 404),  # another participant: not yet
        (unsent, EVE, 404),
        (sent, ADA, 307),
        (sent, BOB, 307),
        (sent, EVE, 404),  # a stranger: as if it did not exist
        (gone_uploader, EVE, 404),  # no longer a participant, even of their own file
        (gone_uploader, BOB, 307),
    ]
    for found, who, status in cases:
        r = await get(found.id, who)
        assert r.status_code == status, (found, who, r.text)
        if status == 307:
            assert r.headers["location"] == f"http://s3.test/{found.object_key}?sig"
            assert r.headers["cache-control"] == "no-store"
        else:
            assert r.headers["content-type"] == "application/problem+json"
    assert (await get(str(uuid.uuid4()), ADA)).status_code == 404
    assert (await client.get("/v1/attachments/not-an-id", headers=bearer(ADA))).status_code == 422
    assert (await client.get(f"/v1/attachments/{sent.id}")).status_code == 401


async def test_a_store_that_does_not_answer_is_a_503_with_retry_after(
    client: httpx.AsyncClient, store: FakeAttachments
) -> None:
    store.down = True
    sent = attachment(sent=True)
    store.found = {sent.id: sent}
    for r in (
        await client.get(f"/v1/attachments/{sent.id}", headers=bearer(BOB)),
        await client.post(f"/v1/conversations/{CID}/attachments", json=UPLOAD, headers=bearer(ADA)),
    ):
        assert r.status_code == 503, r.text
        assert "retry-after" in r.headers
