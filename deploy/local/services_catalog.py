"""Parley's own processes in the local cluster: one entry per deployable, so `make up`, `make ps`
and `make kill` know them by a name that says what they are (users-api, relay-users, ...).

Services start after the infrastructure is healthy and their databases are migrated (they are
`autostart=false` in supervisord; `make up` starts them), and supervisord restarts them on
crash like everything else.
"""

from __future__ import annotations

import asyncio
import importlib
import secrets
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from settings import Program


@dataclass
class ServiceProgram:
    program: Program
    port: int = 0
    upstream: str = ""  # nginx upstream name, for HTTP services behind the gateway
    health_url: str = ""
    prefix: str = ""  # its settings' variable prefix (CHAT for CHAT_PORT, ...)
    replica: int = 1  # 1 for the first (its plain name), k for `<name>-<k>`


# One PostgreSQL database per command service (DESIGN.md 3), each with its own relay.
# `saga`: the registration saga's state and its outbox of commands (relay-saga publishes it)
DATABASES: tuple[str, ...] = ("users", "auth", "chat", "notifications", "saga")

# databases whose service adds tables of its own: database -> the package holding `migrations/`
# (applied with the event store's migrations in one dbmate run)
SERVICE_MIGRATIONS: dict[str, tuple[str, ...]] = {
    # the auth service owns the data keys of crypto-shredding (parley_privacy's key table)
    "auth": ("parley_auth", "parley_privacy"),
    "notifications": ("parley_notifications",),
    "saga": ("parley_registration_saga",),
    # chat's own tables (parley_chat.migrate): blocks learnt from users.events, ...
    "chat": ("parley_chat",),
}

# databases of services that keep no events (no relay): database -> the package whose
# `migrate` module creates and migrates it
STATE_DATABASES: dict[str, str] = {
    "realtime": "parley_realtime",
    # the search model (issue 21): built by projector-search, read by the query gateway
    "search": "parley_projector_search",
}

# contexts with a projector process (services/projector-<context>)
PROJECTED_CONTEXTS: tuple[str, ...] = ("users", "chat", "notifications")

# HTTP services' ports, as offsets from PARLEY_SERVICE_PORT_BASE (the gateway fronts them).
PORT_OFFSETS = {
    "query": 0,
    "users": 1,
    "auth": 2,
    "auth-internal": 12,  # auth-api's internal endpoints: callers only, never nginx
    "chat": 3,
    "notifications": 4,
    "saga": 5,
    "realtime": 6,
    "relay-users": 51,
    "relay-auth": 52,
    "relay-chat": 53,
    "relay-notifications": 54,
    "relay-saga": 55,
    "projector-users": 71,
    "projector-chat": 72,
    "projector-notifications": 74,
    "projector-search": 75,
}


def port(s: Any, service: str) -> int:
    return int(s.service_port_base) + PORT_OFFSETS[service]


def database_dsn(s: Any, database: str) -> str:
    return f"postgresql://{s.pg_user}:{s.pg_password}@{s.host}:{s.pg_port}/{database}"


def internal_credential(s: Any, caller: str) -> str:
    """Caller `caller`'s credential for auth-api's internal endpoints (`<name>.<secret>`, its
    `<PREFIX>_INTERNAL_TOKEN`): the secret generated once into
    `.local/internal-credentials/<caller>`, never in git, stable across restarts."""
    return f"{caller}.{generated_secret(s, f'internal-credentials/{caller}')}"


def internal_callers(s: Any) -> str:
    """AUTH_INTERNAL_CALLERS_FILE: who calls auth-api's internal endpoints (its own port, never
    behind nginx) and what for, each with a credential of its own and the least scope
    (parley_auth.callers.STANDARD_CALLERS, issue 19): the SHA-256 of each secret, as JSON
    in `.local/internal-callers.json` (supervisord's environment cannot quote JSON)."""
    from parley_auth.callers import STANDARD_CALLERS, callers_json

    secrets_ = {c: internal_credential(s, c).partition(".")[2] for c in STANDARD_CALLERS}
    path = Path(s.state) / "internal-callers.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(callers_json(secrets_, STANDARD_CALLERS))
    path.chmod(0o600)
    return str(path)


def keys_access(s: Any, caller: str) -> dict[str, str]:
    """A caller's data keys: auth-api's internal port, with the caller's own credential."""
    return {
        "KEYS_URL": f"http://{s.host}:{port(s, 'auth-internal')}",
        "INTERNAL_TOKEN": internal_credential(s, caller),
    }


def generated_secret(s: Any, name: str) -> str:
    """A secret of this local cluster, generated once into the state directory like the
    internal credentials (chat's key for direct conversations' ids, say)."""
    path = Path(s.state) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def s3_credentials(s: Any) -> tuple[str, str]:
    """The S3 access key and secret of this local cluster (chat-api -> SeaweedFS), generated
    once into the state directory like the internal token."""
    path = Path(s.state) / "s3-credentials"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"parley-{secrets.token_hex(8)} {secrets.token_urlsafe(32)}")
        path.chmod(0o600)
    access_key, secret_key = path.read_text().split()
    return access_key, secret_key


def kafka_passwords(s: Any) -> dict[str, str]:
    """Every Kafka principal's password (parley_messaging.access), generated once into
    .local/kafka/users/<principal> like the internal token; `make up` gives each its SCRAM
    credential and ACLs, tests read `admin`'s."""
    from parley_messaging.access import ensure_passwords, principal_names

    return ensure_passwords(Path(s.state) / "kafka" / "users", principal_names())


def kafka_principal(s: Any, name: str) -> dict[str, str]:
    """The variables that make a process Kafka principal `name` (parley_messaging.security)."""
    from parley_messaging.security import credentials_env

    return credentials_env(name, kafka_passwords(s)[name])


def _python_module(module: str) -> str:
    return f"{sys.executable} -m {module}"


def _service(
    s: Any,
    name: str,
    module: str,
    prefix: str,
    port_key: str,
    env: dict[str, str],
    upstream: str = "",
) -> ServiceProgram:
    """One Parley process: `python -m <module>`, configured by `<prefix>_*` variables, serving
    HTTP (its API, or /metrics /healthz /readyz for workers) on its port."""
    listen = port(s, port_key)
    program = Program(
        name,
        _python_module(module),
        env={f"{prefix}_{k}": v for k, v in {**env, "HOST": s.host, "PORT": str(listen)}.items()},
        autostart=False,  # started by `make up` once databases are migrated
    )
    return ServiceProgram(
        program, listen, upstream, f"http://{s.host}:{listen}/readyz", prefix=prefix
    )


# Replicas (issue 22). Every process is stateless towards its peers: command services share
# their database (optimistic concurrency), projectors, saga participants and the orchestrator
# join their one consumer group, realtime replicas coordinate through PostgreSQL. Relays are
# the exception: one leader per database by advisory lock, so a second relay is a standby.
REPLICA_PORT_STEP = 100


def replica_name(name: str, k: int) -> str:
    return name if k == 1 else f"{name}-{k}"


def replica_of(s: Any, service: ServiceProgram, k: int) -> ServiceProgram:
    """Replica `k` of `service`: the same command and credentials (the same Kafka principal,
    consumer groups and databases), its own program name and ports (each + 100 * (k - 1))."""
    shift = REPLICA_PORT_STEP * (k - 1)
    env = dict(service.program.env)
    for key in (f"{service.prefix}_PORT", f"{service.prefix}_INTERNAL_PORT"):
        if key in env:
            env[key] = str(int(env[key]) + shift)
    # `<PREFIX>_NAME` stays the first's: projectors name their consumer group after it
    name = replica_name(service.program.name, k)
    listen = service.port + shift
    program = Program(name, service.program.command, env=env, autostart=False)
    health = f"http://{s.host}:{listen}/readyz"
    return ServiceProgram(program, listen, service.upstream, health, service.prefix, k)


def with_replicas(s: Any, programs: list[ServiceProgram]) -> list[ServiceProgram]:
    """Every program `s.replicas` times; relays at most twice (leader and standby)."""
    count = int(getattr(s, "replicas", 1))
    out: list[ServiceProgram] = []
    for service in programs:
        copies = min(count, 2) if service.program.name.startswith("relay-") else count
        out += [service, *(replica_of(s, service, k) for k in range(2, copies + 1))]
    return out


def attachments_store(s: Any) -> dict[str, str]:
    """chat-api's S3 settings: SeaweedFS's S3 port, which clients reach too (signed URLs)."""
    access_key, secret_key = s3_credentials(s)
    return {
        "S3_ENDPOINT_URL": f"http://{s.host}:{s.s3_port}",
        "S3_ACCESS_KEY": access_key,
        "S3_SECRET_KEY": secret_key,
        "S3_BUCKET": s.s3_bucket,
    }


def service_programs(s: Any) -> list[ServiceProgram]:
    """Every Parley process for settings `s`."""
    kafka = f"{s.host}:{s.kafka_port}"
    mongo = f"mongodb://{s.host}:{s.mongo_port}/"
    # services that verify access tokens: the auth service's keys, revocations from Kafka
    authn = {
        "JWKS_URL": f"http://{s.host}:{port(s, 'auth')}/.well-known/jwks.json",
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
    }
    # signs and checks X-Consistency-Token (every command service and the query gateway) and
    # the registration token (auth-api and the saga): generated once, like the credentials
    consistency = {"CONSISTENCY_SECRET": generated_secret(s, "consistency-secret")}
    registration = {"REGISTRATION_SECRET": generated_secret(s, "registration-secret")}
    # personal fields: data keys from auth-api's internal port, each caller with its own
    # credential (keys_access)
    users = _service(
        s,
        "users-api",
        "parley_users",
        "USERS",
        "users",
        {
            "POSTGRES_DSN": database_dsn(s, "users"),
            **authn,
            **keys_access(s, "users-api"),
            **consistency,
        },
        upstream="users_cmd",
    )
    auth = _service(
        s,
        "auth-api",
        "parley_auth",
        "AUTH",
        "auth",
        {
            "POSTGRES_DSN": database_dsn(s, "auth"),
            "SMTP_HOST": s.host,
            "SMTP_PORT": str(s.smtp_port),
            # the development signing key, generated on first start (never in git)
            "KEY_DIR": str(s.state / "auth"),
            # wraps the data keys in the key table (issue 19.5): outside the database
            "MASTER_KEY": generated_secret(s, "auth-master-key"),
            "INTERNAL_PORT": str(port(s, "auth-internal")),
            "INTERNAL_CALLERS_FILE": internal_callers(s),
            **consistency,
            **registration,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
        },
        upstream="auth_cmd",
    )
    chat = _service(
        s,
        "chat-api",
        "parley_chat",
        "CHAT",
        "chat",
        {
            "POSTGRES_DSN": database_dsn(s, "chat"),
            "DIRECT_ID_SECRET": generated_secret(s, "direct-id-secret"),
            "SEND_LIMIT": str(s.chat_send_limit),
            **authn,
            **keys_access(s, "chat-api"),
            **consistency,
            **attachments_store(s),
        },
        upstream="chat_cmd",
    )
    notifications = _service(
        s,
        "notifications-api",
        "parley_notifications",
        "NOTIFICATIONS",
        "notifications",
        {
            "POSTGRES_DSN": database_dsn(s, "notifications"),
            "SMTP_HOST": s.host,
            "SMTP_PORT": str(s.smtp_port),
            "AUTH_URL": f"http://{s.host}:{port(s, 'auth-internal')}",
            **authn,
            **keys_access(s, "notifications-api"),
            **consistency,
        },
        upstream="notifications_cmd",
    )
    saga = _service(
        s,
        "registration-saga",
        "parley_registration_saga",
        "SAGA",
        "saga",
        {
            "POSTGRES_DSN": database_dsn(s, "saga"),
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            **registration,
        },
        upstream="saga",
    )
    relays = [
        _service(
            s,
            f"relay-{db}",
            "parley_relay",
            "RELAY",
            f"relay-{db}",
            {
                "NAME": f"relay-{db}",
                "POSTGRES_DSN": database_dsn(s, db),
                "KAFKA_BOOTSTRAP_SERVERS": kafka,
            },
        )
        for db in DATABASES
    ]
    projectors = [
        _service(
            s,
            f"projector-{ctx}",
            f"parley_projector_{ctx}",
            "PROJECTOR",
            f"projector-{ctx}",
            {
                "NAME": f"projector-{ctx}",
                "KAFKA_BOOTSTRAP_SERVERS": kafka,
                "MONGO_URL": mongo,
                **keys_access(s, f"projector-{ctx}"),
            },
        )
        for ctx in PROJECTED_CONTEXTS
    ]
    search = _service(
        s,
        "projector-search",
        "parley_projector_search",
        "SEARCH",
        "projector-search",
        {
            "POSTGRES_DSN": database_dsn(s, "search"),
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            **keys_access(s, "projector-search"),
        },
    )
    query = _service(
        s,
        "query-gateway",
        "parley_query_gateway",
        "QUERY",
        "query",
        {"MONGO_URL": mongo, "SEARCH_DSN": database_dsn(s, "search"), **authn, **consistency},
        upstream="query",
    )
    realtime = _service(
        s,
        "realtime-gateway",
        "parley_realtime",
        "REALTIME",
        "realtime",
        {
            "POSTGRES_DSN": database_dsn(s, "realtime"),
            "MONGO_URL": mongo,
            **authn,
            **keys_access(s, "realtime-gateway"),
        },
        upstream="realtime",
    )
    programs = [users, auth, chat, notifications, saga, *relays, *projectors, search, query]
    programs.append(realtime)
    for service in programs:  # each process is its own Kafka principal, named like it
        service.program.env.update(kafka_principal(s, service.program.name))
    return with_replicas(s, programs)  # replicas share their first's principal


def upstreams(s: Any) -> dict[str, list[str]]:
    """nginx upstream name -> the addresses of its replicas; every name routes.conf uses must
    be here."""
    names: dict[str, list[str]] = {}
    for p in service_programs(s):
        if p.upstream:
            names.setdefault(p.upstream, []).append(f"{s.host}:{p.port}")
    names.setdefault("query", [f"{s.host}:{port(s, 'query')}"])  # the query gateway (read side)
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
        await migrate(database_dsn(s, database), *service_migrations(database))
    for database, package in STATE_DATABASES.items():
        module = importlib.import_module(f"{package}.migrate")
        await module.migrate(database_dsn(s, database))


def service_migrations(database: str) -> list[Path]:
    packages = SERVICE_MIGRATIONS.get(database, ())
    return [Path(str(resources.files(package) / "migrations")) for package in packages]


def prepare_services(s: Any) -> None:
    """Create each service database and apply its migrations (idempotent)."""
    asyncio.run(_prepare(s))
