"""`python -m parley_relay`: the composition root of one relay process."""

from __future__ import annotations

import asyncio
import signal

from parley_observability.logs import configure_logging
from parley_observability.ops import serve_ops
from parley_observability.tracing import configure_tracing

from parley_relay.config import Settings
from parley_relay.relay import run


async def main_async(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    state = {"postgres": False, "kafka": False, "leader": False}

    async def postgres() -> bool:
        return state["postgres"]

    async def kafka() -> bool:
        # a standby has no producer yet: it is ready when it can reach PostgreSQL
        return state["kafka"] or not state["leader"]

    tasks = [asyncio.create_task(run(settings, stop, state))]
    if settings.port:
        checks = {"postgres": postgres, "kafka": kafka}
        tasks.append(serve_ops(settings.name, settings.host, settings.port, checks, stop))
    await asyncio.gather(*tasks)


def main() -> None:
    settings = Settings()
    configure_logging(settings.name, settings.log_level)
    configure_tracing(settings.name)
    asyncio.run(main_async(settings))


if __name__ == "__main__":
    main()
