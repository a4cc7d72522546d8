"""The composition root: the kit's lifespan, pool, store and keys; the conversations
repository (message texts sealed with the sender's key), the block list and its consumer of
users.events, and the routes."""

from __future__ import annotations

from fastapi import FastAPI
from parley_commandkit import CommandService, Kit, Wiring
from parley_privacy.keys import KeyOwner

from parley_chat import attachments_http, attachments_wiring, blocks, http
from parley_chat.config import Settings
from parley_chat.domain import EVENTS, Conversation
from parley_chat.handlers import BUS, Chat, ChatCodec
from parley_chat.limits import SendLimiter


def warm_cache(settings: Settings) -> tuple[int, float] | None:
    if settings.warm_conversations < 1 or not settings.serialize_per_conversation:
        return None
    return settings.warm_conversations, settings.warm_conversation_ttl_s


def bootstrap(settings: Settings | None = None, keys: KeyOwner | None = None) -> FastAPI:
    """`keys`: the data-key owner (tests: a MemoryKeys); default auth's key endpoint."""
    settings = settings or Settings()

    async def wire(kit: Kit) -> Wiring[Chat]:
        conversations = kit.repository(
            Conversation,
            EVENTS,
            codec=ChatCodec(*EVENTS),
            serialize=settings.serialize_per_conversation,
            keep_warm=warm_cache(settings),
        )
        attached = await attachments_wiring.wire(kit, settings)
        limiter = None
        if settings.send_limit > 0:
            limiter = SendLimiter(kit.pool, settings.send_limit, settings.send_limit_window_s)
        block_list, kafka = blocks.BlockList(kit.pool), settings.kafka_bootstrap_servers
        chat = Chat(
            conversations,
            retries=settings.command_retries,
            blocks=block_list,
            attachments=attached.attachments,
            send_limit=limiter,
            direct_secret=settings.direct_id_secret,
        )
        jobs = []
        if settings.consume_blocks:
            group = settings.blocks_group
            jobs.append(blocks.run_forever(block_list, kafka, kit.stop, group=group))
        jobs += attached.jobs
        state = {"chat": chat, "blocks": block_list, "attachments": attached.attachments}
        return Wiring(chat, jobs, state=state, closers=attached.closers)

    def routes(app: FastAPI) -> None:
        http.include_routes(app)
        attachments_http.include_routes(app)

    title = "Parley chat (commands)"
    return CommandService("chat", title, settings, BUS, http.ERRORS, wire, routes, keys).app()
