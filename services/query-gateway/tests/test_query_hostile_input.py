"""Every route of the query gateway with hostile input (parley_testing.hostile): a 4xx
problem, never a 5xx, and no hostile value reaches the read-model store. No server: the Mongo
database is an empty in-memory stand-in that checks every filter as the driver would encode
it (forged cursors and consistency tokens included), tokens come from a test signer."""

from __future__ import annotations

import json
import uuid

import httpx
from parley_authn import install_authn
from parley_query_gateway.bootstrap import bootstrap
from parley_query_gateway.config import Settings
from parley_query_gateway.reads import DocumentCache, QueryCache
from parley_query_gateway.search import SearchModel
from parley_testing.hostile import (
    Boundary,
    BoundaryLog,
    EmptyReadModels,
    operations_from_app,
    walk,
)
from parley_testing.tokens import Signer, jwks

SIGNER = Signer()  # plays the auth service
ADMIN = {"Authorization": f"Bearer {SIGNER.token(sub=str(uuid.uuid4()), role='admin')}"}
SAMPLES = {"email": "ada@example.test", "q": "ada"}


async def test_every_route_answers_hostile_input_with_a_4xx_problem() -> None:
    settings = Settings(
        jwks=json.dumps(jwks(SIGNER)),
        cache_ttl_s=0,  # every request reads (and so shows its filters to) the store
        list_cache_ttl_s=0,
        consistency_wait_s=0,
        kafka_bootstrap_servers="127.0.0.1:9",  # the lag monitor (/metrics) must reach nothing
    )
    app = bootstrap(settings)
    install_authn(app, app.state.authn.verifier, None)  # no revocation list: no Kafka here
    log = BoundaryLog()
    app.state.client = Boundary("mongo client", log)
    app.state.db = EmptyReadModels(log)
    app.state.settings = settings
    app.state.cache = DocumentCache(settings.cache_ttl_s)
    app.state.lists = QueryCache(settings.list_cache_ttl_s)
    # the search model's pool is a boundary too (its live generation known already)
    search = SearchModel("postgresql://unused/search")
    search._pool = Boundary("search pool", log)  # type: ignore[assignment]
    search._schema, search._read_at = "g1", float("inf")
    app.state.search = search
    operations = operations_from_app(app)
    assert {op.name for op in operations} >= {
        "GET /v1/users",
        "GET /v1/users/by-email/{email}",
        "GET /v1/users/{user_id}/contacts",
        "GET /v1/stats/roles",
        "GET /v1/conversations",
        "GET /v1/conversations/{conversation_id}/messages",
        "GET /v1/messages/search",
        "GET /v1/notifications",
        "GET /v1/notifications/preferences",
    }

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://query") as client:
        report = await walk(client, operations, ADMIN, SAMPLES, boundary=log)

    assert report.failures == [], "\n".join(report.failures[:50])
    assert report.sent > 1000, report.summary()
    assert report.reached > 0, report.summary()  # clean requests do get through
