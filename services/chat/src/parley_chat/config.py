"""Settings from the environment (pydantic-settings, `CHAT_*`): the kit's shared fields
(parley_commandkit.CommandSettings), the attachments' (object store, limits, janitor:
attachments_config.AttachmentSettings) and this service's own."""

from __future__ import annotations

from parley_commandkit import CommandSettings
from pydantic_settings import SettingsConfigDict

from parley_chat.attachments_config import AttachmentSettings


class Settings(CommandSettings, AttachmentSettings):
    model_config = SettingsConfigDict(env_prefix="CHAT_", extra="ignore")

    postgres_dsn: str = "postgresql://parley:parley@127.0.0.1:5432/chat"
    port: int = 8103
    # a conversation's snapshot is bounded (participants + a window of recent messages), so
    # snapshotting often keeps the tail folded on every command short (<= 50 events)
    snapshot_every: int = 50
    # commands on one conversation queue per process; a race with another replica re-runs the
    # command on a fresh load up to this many times (appends to a conversation commute)
    command_retries: int = 20
    serialize_per_conversation: bool = True
    # the state a command left is reused by the next command on the same conversation in this
    # process (parley_eventstore.warm): up to this many conversations (0: off; needs the
    # queue above), each reloaded at the latest this long after its load (a destroyed key's
    # plaintext is gone from memory by then)
    warm_conversations: int = 2000
    warm_conversation_ttl_s: float = 5.0
    # per person: at most this many messages per window, across replicas (0: no limit)
    send_limit: int = 20
    send_limit_window_s: float = 10.0
    # keys direct conversations' ids (HMAC): without it anyone who knows two people's ids can
    # compute their conversation's id. Set it once per deployment and never change it
    # (direct conversations are found by it); empty: the legacy unkeyed ids
    direct_id_secret: str = ""
    # learn blocks from users.events into the `blocks` table (parley_chat.blocks); off in
    # tests that run their own consumer or none (never join the live cluster's group)
    consume_blocks: bool = True
    blocks_group: str = "chat-blocks"
