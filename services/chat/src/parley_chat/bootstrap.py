"""The composition root: the kit's lifespan, pool, store and keys; the conversations
repository (message texts sealed with the sender's key) and the routes."""

from __future__ import annotations

from fastapi import FastAPI
from parley_commandkit import CommandService, Kit, Wiring
from parley_privacy.keys import KeyOwner

from parley_chat import http
from parley_chat.config import Settings
from parley_chat.domain import EVENTS, Conversation
from parley_chat.handlers import BUS, Chat, ChatCodec


def bootstrap(settings: Settings | None = None, keys: KeyOwner | None = None) -> FastAPI:
    """`keys`: the data-key owner (tests: a MemoryKeys); default auth's key endpoint."""
    settings = settings or Settings()

    async def wire(kit: Kit) -> Wiring[Chat]:
        conversations = kit.repository(
            Conversation,
            EVENTS,
            codec=ChatCodec(*EVENTS),
            serialize=settings.serialize_per_conversation,
        )
        chat = Chat(conversations, retries=settings.command_retries)
        return Wiring(chat, state={"chat": chat})

    title = "Parley chat (commands)"
    return CommandService(
        "chat", title, settings, BUS, http.ERRORS, wire, http.include_routes, keys
    ).app()
