"""The operations endpoint of a worker process (relay, projector, saga): /metrics, /healthz
and /readyz on a small uvicorn server inside the worker's own event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import uvicorn
from fastapi import FastAPI

from parley_observability.http import ReadinessCheck, install_observability
from parley_observability.logs import configure_logging
from parley_observability.tracing import configure_tracing


def ops_app(title: str, readiness: Mapping[str, ReadinessCheck]) -> FastAPI:
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    install_observability(app, readiness)
    return app


def serve_ops(
    title: str, host: str, port: int, readiness: Mapping[str, ReadinessCheck], stop: asyncio.Event
) -> asyncio.Task[None]:
    """Start serving; the task ends when the server exits. uvicorn captures SIGTERM/SIGINT while
    it serves, so its exit also sets `stop` for the worker."""
    server = uvicorn.Server(
        uvicorn.Config(ops_app(title, readiness), host=host, port=port, log_config=None)
    )
    task = asyncio.create_task(server.serve())
    task.add_done_callback(lambda _: stop.set())

    async def watch() -> None:
        await stop.wait()
        server.should_exit = True

    asyncio.get_running_loop().create_task(watch())
    return task


def serve_http(
    app: FastAPI,
    service: str,
    host: str,
    port: int,
    log_level: str,
    graceful_shutdown_s: int | None = None,
) -> None:
    """Run an HTTP service's app with Parley's logging and tracing (its process entry point).
    `graceful_shutdown_s`: how long a stop waits for open requests (a service holding
    long-lived streams sets it, or a stop would wait for every client to leave)."""
    configure_logging(service, log_level)
    configure_tracing(service)
    # nginx keeps the access log; a JSON line per request here cost a large share of the CPU
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=graceful_shutdown_s,
    )
