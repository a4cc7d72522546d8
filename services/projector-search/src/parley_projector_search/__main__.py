"""`python -m parley_projector_search`: the composition root of the search projector (the
search database's pool, the generations' consumers, the ops endpoint). A rebuild is
`python -m parley_projector_search.rebuild` (rebuild.py)."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import asyncpg
from parley_messaging.forgetting import ForgottenFollower
from parley_observability.logs import configure_logging
from parley_observability.ops import serve_ops
from parley_observability.tracing import configure_tracing
from parley_privacy.fields import FieldCipher

from parley_projector_search.config import Settings
from parley_projector_search.migrate import first_generation
from parley_projector_search.runtime import Options, supervise


async def serve(settings: Settings) -> None:
    keys = settings.key_client()
    options = Options(
        settings.kafka_bootstrap_servers,
        max_records=settings.max_records,
        decrypt=FieldCipher(keys).consume,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, options.stop.set)
    await first_generation(settings.postgres_dsn)
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=4)

    async def postgres() -> bool:
        return bool(await pool.fetchval("SELECT 1"))

    tasks = [asyncio.create_task(supervise(pool, options))]
    # every replica drops a forgotten person's cached key at once
    forgetting = None
    if settings.keys_follow_forgotten:
        follower = ForgottenFollower(
            settings.kafka_bootstrap_servers, forget=keys.evict, gap=keys.clear
        )
        forgetting = asyncio.create_task(follower.run(), name="key-evictions")
    if settings.port:
        tasks.append(
            serve_ops(
                settings.name, settings.host, settings.port, {"postgres": postgres}, options.stop
            )
        )
    try:
        await asyncio.gather(*tasks)
    finally:
        if forgetting is not None:
            forgetting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forgetting
        await pool.close()
        await keys.close()


def main() -> None:
    settings = Settings()
    configure_logging(settings.name, settings.log_level)
    configure_tracing(settings.name)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
