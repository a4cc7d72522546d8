"""What the re-drive and rebuild commands share: connection options from flags or the
environment (the same variables as the services), and the projection to load."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from parley_privacy.client import KeyClient
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

log = logging.getLogger("parley.readmodel.cli")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS)",
    )
    p.add_argument(
        "--mongo-url",
        default=os.environ.get("MONGO_URL", "mongodb://127.0.0.1:27017/"),
        help="MongoDB / FerretDB URL (env MONGO_URL)",
    )
    p.add_argument(
        "--database",
        default=os.environ.get("READMODEL_DATABASE", "parley"),
        help="database of the read models (env READMODEL_DATABASE)",
    )
    p.add_argument(
        "--keys-url",
        default=os.environ.get("KEYS_URL", "http://127.0.0.1:8112"),
        help="the key owner (auth-api's internal port) for personal fields (env KEYS_URL); "
        "the credential (a projector's, keys:read) is read from the environment only: "
        "INTERNAL_TOKEN",
    )
    return p


def key_client(args: argparse.Namespace) -> KeyClient | None:
    """The key client for decrypting personal fields, or None (with a warning) without
    INTERNAL_TOKEN: the read model would then hold their ciphertext, never plaintext."""
    token = os.environ.get("INTERNAL_TOKEN", "")
    if not token:
        log.warning("INTERNAL_TOKEN is not set: personal fields are written encrypted")
        return None
    return KeyClient(args.keys_url, token)


@asynccontextmanager
async def database(url: str, name: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    # socket timeout: a hung store must fail a command (retried), not hang the CLI forever
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, socketTimeoutMS=60_000)
    try:
        yield client[name]
    finally:
        await client.close()
