"""The composition root: settings -> hub, live feed, signals, streams -> FastAPI app (no I/O at
import time; everything starts in the lifespan)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from parley_authn import RevocationList, Verifier, install_authn
from parley_http.edge import install_edge
from parley_http.openapi import document_problems
from parley_messaging.forgetting import ForgottenFollower
from parley_observability.http import install_observability
from pymongo import AsyncMongoClient

from parley_realtime import http
from parley_realtime.config import Settings
from parley_realtime.feed import LiveFeed, Translator
from parley_realtime.hub import Hub
from parley_realtime.mappings import TOPICS
from parley_realtime.members import Members
from parley_realtime.signalling import Signalling, TypingLimiter
from parley_realtime.signals import Signals
from parley_realtime.stream import Streams

log = logging.getLogger("parley.realtime")


def bootstrap(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    verifier = Verifier.from_settings(settings)
    revocations = RevocationList.from_settings(settings)
    hub = Hub(TOPICS)
    members = Members(None)
    signalling = Signalling(
        hub, members, TypingLimiter(settings.typing_interval_s), settings.typing_ttl_s
    )
    signals = Signals(
        settings.postgres_dsn,
        settings.replica(),
        on_typing=signalling.on_typing,
        on_presence=signalling.on_presence,
        max_streams_per_person=settings.max_streams_per_person,
    )
    signalling.signals = signals
    cipher = settings.cipher()
    translator = Translator(cipher, members=members)
    # every replica drops a forgotten person's cached key at once (users.events, no group)
    forgetting = ForgottenFollower(
        settings.kafka_bootstrap_servers, forget=cipher.keys.evict, gap=cipher.keys.clear
    )
    streams = Streams(
        hub,
        signals,
        translator,
        settings.kafka_bootstrap_servers,
        heartbeat_s=settings.heartbeat_s,
        max_pending=settings.max_pending_frames,
        max_replay_records=settings.max_replay_records,
        is_revoked=revocations.is_revoked,
    )
    feed = LiveFeed(settings.kafka_bootstrap_servers, hub, translator, members)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            # 30 s: the peers lookup (presence) filters memberships, a scan on FerretDB
            settings.mongo_url,
            socketTimeoutMS=30_000,
            serverSelectionTimeoutMS=3000,
        )
        members.db = client[settings.mongo_db]
        app.state.client = client
        await signals.start()
        tasks = [
            asyncio.create_task(feed.run(), name="live-feed"),
            asyncio.create_task(streams.police(), name="stream-police"),
        ]
        if settings.keys_follow_forgotten:
            tasks.append(asyncio.create_task(forgetting.run(), name="key-evictions"))
        # what exists now lives as long as the process: out of the collector's way
        gc.freeze()
        try:
            async with revocations:
                yield
        finally:
            hub.close_all("shutdown")
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await signals.stop()
            await client.close()

    app = FastAPI(title="Parley realtime", version="1.0.0", lifespan=lifespan)
    app.state.streams = streams
    app.state.signalling = signalling
    install_edge(app, max_body_bytes=1024)  # problem+json, hostile input refused, 1 KiB bodies

    async def feed_started() -> bool:
        return hub.started.is_set()

    install_authn(app, verifier, revocations)
    install_observability(
        app,
        {
            "feed": feed_started,
            "signals": signals.ready,
            "revocations": revocations.check_ready,
        },
    )
    app.include_router(http.router)
    document_problems(app)
    return app
