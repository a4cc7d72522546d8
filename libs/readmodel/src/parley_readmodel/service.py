"""The composition root every projector service shares: settings from `PROJECTOR_*`, one
AsyncMongoClient, the runtime loop for its projection, and the ops endpoint (/metrics,
/healthz, /readyz) beside it. A projector service is its views plus three lines:

    class Settings(ProjectorSettings):
        name: str = "projector-users"

    main(Settings(), users_projection)
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import Any

from parley_messaging.forgetting import ForgottenFollower
from parley_observability.logs import configure_logging
from parley_observability.ops import serve_ops
from parley_observability.tracing import configure_tracing
from parley_privacy.fields import FieldCipher
from parley_privacy.settings import PrivacySettings
from pydantic_settings import BaseSettings, SettingsConfigDict
from pymongo import AsyncMongoClient

from parley_readmodel.projection import Projection
from parley_readmodel.runtime import Options, run


class ProjectorSettings(PrivacySettings, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROJECTOR_", extra="ignore")

    name: str  # the projection's name: its consumer group and alias document
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    mongo_url: str = "mongodb://127.0.0.1:27017/"
    mongo_db: str = "parley"
    max_records: int = 500
    host: str = "127.0.0.1"
    port: int = 0  # ops endpoint; 0 = none
    log_level: str = "INFO"


async def serve(settings: ProjectorSettings, projection: Callable[[str], Projection]) -> None:
    keys = settings.key_client()  # personal fields: the key owner's endpoint, cached
    options = Options(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        max_records=settings.max_records,
        decrypt=FieldCipher(keys).consume,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, options.stop.set)
    # bounded: a store that stops answering fails the batch (retried), never hangs forever
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongo_url, socketTimeoutMS=15000, serverSelectionTimeoutMS=5000
    )

    async def mongo() -> bool:
        return bool((await client.admin.command("ping")).get("ok"))

    tasks = [
        asyncio.create_task(run(client[settings.mongo_db], projection(settings.name), options))
    ]
    # every replica drops a forgotten person's cached key at once, not only the one whose
    # partition carries the UserForgotten (the runtime's decrypt evicts there too)
    forgetting = None
    if settings.keys_follow_forgotten:
        follower = ForgottenFollower(
            settings.kafka_bootstrap_servers, forget=keys.evict, gap=keys.clear
        )
        forgetting = asyncio.create_task(follower.run(), name="key-evictions")
    if settings.port:
        tasks.append(
            serve_ops(settings.name, settings.host, settings.port, {"mongo": mongo}, options.stop)
        )
    try:
        await asyncio.gather(*tasks)
    finally:
        if forgetting is not None:
            forgetting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forgetting
        await client.close()
        await keys.close()


def main(settings: ProjectorSettings, projection: Callable[[str], Projection]) -> None:
    configure_logging(settings.name, settings.log_level)
    configure_tracing(settings.name)
    asyncio.run(serve(settings, projection))
