"""pytest plugin (registered as an entry point): session fixtures with the servers' addresses,
and helpers for tests that need a private database or topic."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from parley_testing import containers, kafka_access
from parley_testing.infra import Found, NoServer, Server, locate


def pytest_configure(config: pytest.Config) -> None:
    # every Kafka client a test builds (**kafka_security()) and every service a test runs
    # in-process authenticate as the local cluster's admin (parley_testing.kafka_access)
    kafka_access.run_as_admin()


def _address(server: Server, stack: contextlib.ExitStack) -> str:
    try:
        found: Found = locate(server)
    except NoServer as error:
        # fail, never skip: a suite that skips its integration tests proves nothing
        pytest.fail(str(error))
    if found.source == "testcontainers":
        container, address = containers.start(server)
        stack.enter_context(container)
        return address
    return found.address


@pytest.fixture(scope="session")
def _servers() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


@pytest.fixture(scope="session")
def postgres_dsn(_servers: contextlib.ExitStack) -> str:
    """DSN of a PostgreSQL server where the tests may create databases."""
    return _address(Server.POSTGRES, _servers)


@pytest.fixture(scope="session")
def kafka_bootstrap(_servers: contextlib.ExitStack) -> str:
    return _address(Server.KAFKA, _servers)


@pytest.fixture(scope="session")
def mongo_url(_servers: contextlib.ExitStack) -> str:
    return _address(Server.MONGO, _servers)


def dsn_for_database(dsn: str, database: str) -> str:
    """The same server DSN pointing at another database."""
    head, _, tail = dsn.rpartition("/")
    query = ""
    if "?" in tail:
        query = "?" + tail.split("?", 1)[1]
    return f"{head}/{database}{query}"


async def create_database(postgres_dsn: str) -> str:
    """A new, empty database on the server of `postgres_dsn`; returns its DSN."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return dsn_for_database(postgres_dsn, name)


async def drop_database(dsn: str) -> None:
    import asyncpg

    name = dsn.rpartition("/")[2].partition("?")[0]
    admin = await asyncpg.connect(dsn_for_database(dsn, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def fresh_database(postgres_dsn: str) -> AsyncIterator[str]:
    """A new, empty database for one test; dropped afterwards. Yields its DSN."""
    dsn = await create_database(postgres_dsn)
    yield dsn
    await drop_database(dsn)


@pytest.fixture
def unique_name() -> str:
    """A short unique suffix for topics, groups and collections that one test owns."""
    return uuid.uuid4().hex[:10]
