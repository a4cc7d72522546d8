"""Parley's own processes in the local cluster: one entry per deployable, so `make up`, `make ps`
and `make kill` know them by a name that says what they are (users-api, relay-users, ...).

Services start after the infrastructure is healthy and their databases are migrated (they are
`autostart=false` in supervisord; `make up` starts them), and supervisord restarts them on
crash like everything else.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import Any

from settings import Program


@dataclass
class ServiceProgram:
    program: Program
    port: int = 0
    upstream: str = ""  # nginx upstream name, for HTTP services behind the gateway
    health_url: str = ""


# One PostgreSQL database per command service (DESIGN.md 3), each with its own relay.
DATABASES: tuple[str, ...] = ("users",)

# contexts with a projector process (services/projector-<context>)
PROJECTED_CONTEXTS: tuple[str, ...] = ("users",)

# HTTP services' ports, as offsets from PARLEY_SERVICE_PORT_BASE (the gateway fronts them).
PORT_OFFSETS = {"query": 0, "users": 1, "relay-users": 51, "projector-users": 71}


def port(s: Any, service: str) -> int:
    return int(s.service_port_base) + PORT_OFFSETS[service]


def database_dsn(s: Any, database: str) -> str:
    return f"postgresql://{s.pg_user}:{s.pg_password}@{s.host}:{s.pg_port}/{database}"


def _python_module(module: str) -> str:
    return f"{sys.executable} -m {module}"


def service_programs(s: Any) -> list[ServiceProgram]:
    """Every Parley process for settings `s`."""
    common = {"PARLEY_SERVICE_LOGS": "json"}
    users = ServiceProgram(
        Program(
            "users-api",
            _python_module("parley_users"),
            env={
                **common,
                "USERS_POSTGRES_DSN": database_dsn(s, "users"),
                "USERS_HOST": s.host,
                "USERS_PORT": str(port(s, "users")),
            },
            autostart=False,
        ),
        port=port(s, "users"),
        upstream="users_cmd",
        health_url=f"http://{s.host}:{port(s, 'users')}/readyz",
    )
    relays = [
        ServiceProgram(
            Program(
                f"relay-{database}",
                _python_module("parley_relay"),
                env={
                    **common,
                    "RELAY_NAME": f"relay-{database}",
                    "RELAY_POSTGRES_DSN": database_dsn(s, database),
                    "RELAY_KAFKA_BOOTSTRAP_SERVERS": f"{s.host}:{s.kafka_port}",
                    "RELAY_HOST": s.host,
                    "RELAY_PORT": str(port(s, f"relay-{database}")),
                },
                autostart=False,
            ),
            port=port(s, f"relay-{database}"),
            health_url=f"http://{s.host}:{port(s, f'relay-{database}')}/readyz",
        )
        for database in DATABASES
    ]
    mongo = f"mongodb://{s.host}:{s.mongo_port}/"
    projectors = [
        ServiceProgram(
            Program(
                f"projector-{context}",
                _python_module(f"parley_projector_{context}"),
                env={
                    **common,
                    "PROJECTOR_NAME": f"projector-{context}",
                    "PROJECTOR_KAFKA_BOOTSTRAP_SERVERS": f"{s.host}:{s.kafka_port}",
                    "PROJECTOR_MONGO_URL": mongo,
                    "PROJECTOR_HOST": s.host,
                    "PROJECTOR_PORT": str(port(s, f"projector-{context}")),
                },
                autostart=False,
            ),
            port=port(s, f"projector-{context}"),
            health_url=f"http://{s.host}:{port(s, f'projector-{context}')}/readyz",
        )
        for context in PROJECTED_CONTEXTS
    ]
    query = ServiceProgram(
        Program(
            "query-gateway",
            _python_module("parley_query_gateway"),
            env={
                **common,
                "QUERY_MONGO_URL": mongo,
                "QUERY_HOST": s.host,
                "QUERY_PORT": str(port(s, "query")),
            },
            autostart=False,
        ),
        port=port(s, "query"),
        upstream="query",
        health_url=f"http://{s.host}:{port(s, 'query')}/readyz",
    )
    return [users, *relays, *projectors, query]


def upstreams(s: Any) -> dict[str, str]:
    """nginx upstream name -> address; every name routes.conf uses must be here."""
    names = {p.upstream: f"{s.host}:{p.port}" for p in service_programs(s) if p.upstream}
    names.setdefault("query", f"{s.host}:{port(s, 'query')}")  # the query gateway (read side)
    return names


async def _prepare(s: Any) -> None:
    import asyncpg
    from parley_eventstore.migrate import migrate

    admin = await asyncpg.connect(database_dsn(s, "postgres"))
    try:
        existing = {r["datname"] for r in await admin.fetch("SELECT datname FROM pg_database")}
        for database in DATABASES:
            if database not in existing:
                await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    for database in DATABASES:
        await migrate(database_dsn(s, database))


def prepare_services(s: Any) -> None:
    """Create each service database and apply its migrations (idempotent)."""
    asyncio.run(_prepare(s))
