"""The composition root: settings -> Mongo client -> FastAPI app (no I/O at import time)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from parley_authn import RevocationList, Verifier, install_authn
from parley_http.apidocs import docs_router
from parley_http.edge import install_edge
from parley_http.openapi import document_problems
from parley_http.problems import problem_response
from parley_observability.http import install_observability
from parley_readmodel.lag import LagMonitor
from parley_readmodel.metrics import GROUP_LAG
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from parley_query_gateway import chat, notifications, reports, users
from parley_query_gateway.config import Settings
from parley_query_gateway.reads import DocumentCache, QueryCache
from parley_query_gateway.search import SearchModel

log = logging.getLogger("parley.query")
# the search model's consumer groups are one per generation (projector-search.g<N>): the lag
# exported is the live generation's (follow_search_generation)
SEARCH_GROUP_PREFIX = "projector-search.g"
SEARCH_TOPICS = ("users.events", "auth.events", "chat.events")


def bootstrap(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    verifier = Verifier.from_settings(settings)
    revocations = RevocationList.from_settings(settings)
    # the projections this gateway serves, by consumer group: their lag is its freshness
    groups: dict[str, tuple[str, ...]] = {
        users.PROJECTION: ("users.events",),
        chat.PROJECTION: ("chat.events",),
        notifications.PROJECTION: notifications.TOPICS,
        f"{SEARCH_GROUP_PREFIX}1": SEARCH_TOPICS,
    }
    lag = LagMonitor(settings.kafka_bootstrap_servers, groups)

    async def follow_search_generation() -> None:
        """Export the live search generation's group, not a retired one's (whose lag only
        grows once its consumers stopped): checked at every scrape, before the lag."""
        group = SEARCH_GROUP_PREFIX + (await app.state.search.schema()).removeprefix("g")
        if group not in groups:
            for old in [g for g in groups if g.startswith(SEARCH_GROUP_PREFIX)]:
                del groups[old]
            groups[group] = SEARCH_TOPICS
            GROUP_LAG.clear()  # the retired group's series go; every group is set again below

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # bounded: a read model store that stops answering yields a 503, not a hung request
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongo_url, socketTimeoutMS=5000, serverSelectionTimeoutMS=3000
        )
        app.state.client = client
        app.state.db = client[settings.mongo_db]
        app.state.settings = settings
        app.state.cache = DocumentCache(settings.cache_ttl_s)
        app.state.lists = QueryCache(settings.list_cache_ttl_s)
        search = SearchModel(settings.search_dsn, settings.search_pool_size)
        app.state.search = search
        try:
            await search.open()
            async with revocations:
                yield
        finally:
            await lag.close()
            await search.close()
            await client.close()

    # /docs is the whole gateway's API page (parley_http.apidocs), not this service's own
    app = FastAPI(
        title="Parley queries", version="1.0.0", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    install_edge(app, max_body_bytes=1024)

    @app.exception_handler(PyMongoError)
    async def store_unavailable(request: Request, exc: PyMongoError) -> JSONResponse:
        log.warning("read model store error on %s: %s", request.url.path, exc)
        return problem_response(
            503,
            "Service Unavailable",
            "the read model store is not answering; retry",
            instance=request.url.path,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(asyncpg.PostgresError)
    @app.exception_handler(asyncpg.InterfaceError)
    @app.exception_handler(ConnectionError)
    @app.exception_handler(TimeoutError)
    async def search_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("search model error on %s: %s", request.url.path, exc)
        return problem_response(
            503,
            "Service Unavailable",
            "the search model is not answering; retry",
            instance=request.url.path,
            headers={"Retry-After": "1"},
        )

    async def search_ready() -> bool:
        return bool(await app.state.search.ready())

    async def mongo_ready() -> bool:
        return bool((await app.state.client.admin.command("ping")).get("ok"))

    install_authn(app, verifier, revocations)
    install_observability(
        app,
        {"mongo": mongo_ready, "search": search_ready, "revocations": revocations.check_ready},
        [follow_search_generation, lag.refresh],
    )
    app.include_router(users.router)
    app.include_router(users.stats_router)
    app.include_router(chat.router)
    app.include_router(reports.router)
    app.include_router(notifications.router)
    app.include_router(docs_router())
    document_problems(app)
    return app
