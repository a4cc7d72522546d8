"""Where the tests find PostgreSQL, Kafka and the Mongo-wire store.

Order, per server: an explicit environment variable; the local cluster (`make up`) if its port
answers; a testcontainers container when a Docker engine is reachable. The first two are what
runs on a machine without Docker; the third lets the same suite run on a laptop with Docker.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit


class Server(Enum):
    POSTGRES = "postgres"
    KAFKA = "kafka"
    MONGO = "mongo"


ENV_VARS = {
    Server.POSTGRES: "POSTGRES_DSN",
    Server.KAFKA: "KAFKA_BOOTSTRAP_SERVERS",
    Server.MONGO: "MONGO_URL",
}


def local_cluster_defaults(env: Mapping[str, str]) -> dict[Server, str]:
    """The addresses `make up` uses; the same PARLEY_* overrides as deploy/local/cluster.py."""
    host = env.get("PARLEY_HOST", "127.0.0.1")
    pg_port = env.get("PARLEY_PG_PORT", "5432")
    pg_user = env.get("PARLEY_PG_USER", "parley")
    pg_password = env.get("PARLEY_PG_PASSWORD", "parley")
    return {
        Server.POSTGRES: f"postgresql://{pg_user}:{pg_password}@{host}:{pg_port}/postgres",
        Server.KAFKA: f"{host}:{env.get('PARLEY_KAFKA_PORT', '9092')}",
        Server.MONGO: f"mongodb://{host}:{env.get('PARLEY_MONGO_PORT', '27017')}/",
    }


@dataclass(frozen=True)
class Found:
    server: Server
    address: str
    source: str  # "env", "local-cluster" or "testcontainers"


class NoServer(RuntimeError):
    """Neither the environment, the local cluster nor Docker offers this server."""


def host_port(server: Server, address: str) -> tuple[str, int]:
    if server is Server.KAFKA:
        first = address.split(",")[0]
        host, _, port = first.rpartition(":")
        return host, int(port)
    parts = urlsplit(address)
    default = 5432 if server is Server.POSTGRES else 27017
    return parts.hostname or "127.0.0.1", parts.port or default


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def docker_reachable() -> bool:
    """A Docker engine answers (testcontainers needs one; this machine kind has only the client)."""
    try:
        import docker

        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:
        return False


def locate(
    server: Server,
    env: Mapping[str, str] | None = None,
    probe: Callable[[str, int], bool] = port_open,
    docker: Callable[[], bool] = docker_reachable,
) -> Found:
    """Pick the address for one server, in the documented order (does not start anything)."""
    env = os.environ if env is None else env
    explicit = env.get(ENV_VARS[server])
    if explicit:
        return Found(server, explicit, "env")
    local = local_cluster_defaults(env)[server]
    if probe(*host_port(server, local)):
        return Found(server, local, "local-cluster")
    if docker():
        return Found(server, "", "testcontainers")
    raise NoServer(
        f"no {server.value}: set {ENV_VARS[server]}, run `make up`, or start a Docker engine"
    )
