"""`python -m parley_relay`: the composition root of one relay process."""

from __future__ import annotations

import asyncio
import signal

import uvicorn
from fastapi import FastAPI
from parley_observability.http import install_observability
from parley_observability.logs import configure_logging

from parley_relay.config import Settings
from parley_relay.relay import run


def health_app(state: dict[str, bool]) -> FastAPI:
    app = FastAPI(title="Parley outbox relay", docs_url=None, redoc_url=None)

    async def postgres() -> bool:
        return state["postgres"]

    async def kafka() -> bool:
        # a standby has no producer yet: it is ready when it can reach PostgreSQL
        return state["kafka"] or not state["leader"]

    install_observability(app, {"postgres": postgres, "kafka": kafka})
    return app


async def main_async(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    state = {"postgres": False, "kafka": False, "leader": False}
    tasks = [asyncio.create_task(run(settings, stop, state))]
    server = None
    if settings.port:
        config = uvicorn.Config(
            health_app(state), host=settings.host, port=settings.port, log_config=None
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        # uvicorn captures SIGTERM/SIGINT while it serves; its exit is our signal to stop
        serving.add_done_callback(lambda _: stop.set())
        tasks.append(serving)
    await stop.wait()
    if server is not None:
        server.should_exit = True
    await asyncio.gather(*tasks)


def main() -> None:
    settings = Settings()
    configure_logging(settings.name, settings.log_level)
    asyncio.run(main_async(settings))


if __name__ == "__main__":
    main()
