"""testcontainers fallbacks, used only when a Docker engine is reachable (never on this machine
kind, which has no engine; the same images as docker-compose.yml)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from parley_testing.infra import Server

IMAGES = {
    Server.POSTGRES: "postgres:16-alpine",
    Server.KAFKA: "apache/kafka:3.9.1",
    Server.MONGO: "mongo:7",
}


def start(server: Server) -> tuple[AbstractContextManager[Any], str]:
    """Start a container for the server; returns (container, address)."""
    if server is Server.POSTGRES:
        from testcontainers.postgres import PostgresContainer

        pg = PostgresContainer(IMAGES[server], driver=None).start()
        return pg, pg.get_connection_url()
    if server is Server.KAFKA:
        from testcontainers.kafka import KafkaContainer

        kafka = KafkaContainer(IMAGES[server]).with_kraft().start()
        return kafka, kafka.get_bootstrap_server()
    from testcontainers.mongodb import MongoDbContainer

    mongo = MongoDbContainer(IMAGES[server]).start()
    return mongo, mongo.get_connection_url()
