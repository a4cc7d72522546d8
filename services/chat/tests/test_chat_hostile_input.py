"""Every route of the chat command API with hostile input (parley_testing.hostile): a 4xx
problem, never a 5xx, and no hostile value reaches the event store. No server: the pool is a
Boundary stand-in, tokens come from a test signer, data keys from memory (MemoryKeys)."""

from __future__ import annotations

import json
import uuid

import httpx
from parley_authn import install_authn
from parley_chat import http
from parley_chat.attachments import Attachments, Limits
from parley_chat.attachments_config import AttachmentSettings
from parley_chat.bootstrap import bootstrap
from parley_chat.config import Settings
from parley_chat.domain import EVENTS, Conversation
from parley_chat.handlers import BUS, Chat, ChatCodec
from parley_commandkit import Commands
from parley_eventstore.aggregate import Repository
from parley_eventstore.store import EventStore
from parley_privacy.fields import FieldCipher
from parley_privacy.memory import MemoryKeys
from parley_testing.hostile import Boundary, BoundaryLog, operations_from_app, walk
from parley_testing.tokens import Signer, jwks

SIGNER = Signer()  # plays the auth service
ADMIN = {"Authorization": f"Bearer {SIGNER.token(sub=str(uuid.uuid4()), role='admin')}"}
SAMPLES = {
    "content": "hello",
    "client_message_id": "m-1",
    "at": "1",
    **{"filename": "a.png", "content_type": "image/png", "size": 10},  # attachments
}


async def test_every_route_answers_hostile_input_with_a_4xx_problem() -> None:
    settings = Settings(jwks=json.dumps(jwks(SIGNER)))
    keys = MemoryKeys()
    app = bootstrap(settings, keys=keys)
    install_authn(app, app.state.authn.verifier, None)  # no revocation list: no Kafka here
    log = BoundaryLog()
    pool = Boundary("postgres", log)
    store = EventStore(pool, topic="chat.events", source="/parley/chat", context=http.CONTEXT)
    conversations = Repository(store, Conversation, ChatCodec(*EVENTS), cipher=FieldCipher(keys))
    app.state.pool = pool
    app.state.chat = Chat(conversations)
    app.state.commands = Commands(http.CONTEXT, BUS, app.state.chat, http.ERRORS)
    limits = Limits.of(AttachmentSettings())
    app.state.attachments = Attachments(pool, Boundary("s3", log), limits)
    operations = operations_from_app(app)
    assert {op.name for op in operations} >= {
        "POST /v1/conversations",
        "POST /v1/conversations/{conversation_id}/messages",
        "DELETE /v1/conversations/{conversation_id}/participants/{user_id}",
        "GET /v1/conversations/{conversation_id}/state",
        "POST /v1/conversations/{conversation_id}/attachments",
        "GET /v1/attachments/{attachment_id}",
    }

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://chat") as client:
        report = await walk(client, operations, ADMIN, SAMPLES, boundary=log)

    assert report.failures == [], "\n".join(report.failures[:50])
    assert report.sent > 800, report.summary()
    assert report.reached > 0, report.summary()  # clean requests do get through
