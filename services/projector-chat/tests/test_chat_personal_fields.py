"""issue 19.5: `client_message_id` is personal data of the sender (sealed with their key): a
forgotten sender's id is gone from the read model, both when the event decrypts to the
placeholder and when UserForgotten sweeps what was written before."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from parley_messaging.envelope import Envelope, ce_type
from parley_projector_chat.views import MESSAGES, message_key, message_sent, user_forgotten
from parley_readmodel.projection import Sweep, Write

T = datetime(2026, 1, 1, tzinfo=UTC)


def envelope(name: str, version: int = 1, subject: str = "c1", ctx: str = "chat") -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        source=f"/parley/{ctx}",
        type=ce_type(ctx, name, 1),
        subject=subject,
        time=T,
        aggregate_version=version,
        data=b"{}",
    )


def sent(**more: Any) -> dict[str, Any]:
    base = {"conversation_id": "c1", "message_id": "m1", "seq": 1, "sender_id": "a"}
    return {**base, "content": "hi", "recipient_ids": ["b"], **more}


def message_fields(writes: list[Write]) -> dict[str, Any]:
    (write,) = [w for w in writes if w.collection == MESSAGES]
    assert write.doc_id == message_key("c1", 1)
    fields: dict[str, Any] = write.update["$set"]
    return fields


def test_the_senders_client_message_id_is_kept_while_readable() -> None:
    writes = message_sent(envelope("MessageSent"), sent(client_message_id="tab-7"))
    assert message_fields(writes)["client_message_id"] == "tab-7"


def test_a_forgotten_senders_client_message_id_is_not_kept_as_its_placeholder() -> None:
    data = sent(
        content="[redacted]", client_message_id="", _redacted=["content", "client_message_id"]
    )
    assert message_fields(message_sent(envelope("MessageSent"), data))["client_message_id"] is None


def test_forgetting_sweeps_client_message_ids() -> None:
    sweeps = user_forgotten(envelope("UserForgotten", 3, "a", "users"), {"user_id": "a"})
    (messages,) = [s for s in sweeps if isinstance(s, Sweep) and s.collection == MESSAGES]
    assert messages.filter == {"sender_id": "a"}
    assert messages.update["$set"]["client_message_id"] is None
