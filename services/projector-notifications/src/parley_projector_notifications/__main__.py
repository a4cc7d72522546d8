"""`python -m parley_projector_notifications`: the composition root of the notifications projector.

Re-drive and rebuild are the read-model library's commands, with this projection's entry
point name (`notifications`):
    python -m parley_readmodel.redrive --group projector-notifications --projection notifications
    python -m parley_readmodel.rebuild --projection notifications
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from parley_observability.logs import configure_logging
from parley_observability.ops import serve_ops
from parley_observability.tracing import configure_tracing
from parley_readmodel.runtime import Options, run
from pymongo import AsyncMongoClient

from parley_projector_notifications.config import Settings
from parley_projector_notifications.views import notifications_projection


async def main_async(settings: Settings) -> None:
    options = Options(
        bootstrap_servers=settings.kafka_bootstrap_servers, max_records=settings.max_records
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
        asyncio.create_task(
            run(client[settings.mongo_db], notifications_projection(settings.name), options)
        )
    ]
    if settings.port:
        tasks.append(
            serve_ops(settings.name, settings.host, settings.port, {"mongo": mongo}, options.stop)
        )
    try:
        await asyncio.gather(*tasks)
    finally:
        await client.close()


def main() -> None:
    settings = Settings()
    configure_logging(settings.name, settings.log_level)
    configure_tracing(settings.name)
    asyncio.run(main_async(settings))


if __name__ == "__main__":
    main()
