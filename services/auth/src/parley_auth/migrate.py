"""The auth database's schema: the event store's tables plus the auth secret tables.

`python -m parley_auth.migrate <dsn>` (what the local cluster and a deploy job run).
"""

from __future__ import annotations

from pathlib import Path

from parley_eventstore import migrate as eventstore
from parley_privacy import store as privacy


def migrations_dir() -> Path:
    return eventstore.package_migrations("parley_auth")


async def migrate(dsn: str) -> None:
    await eventstore.migrate(dsn, migrations_dir(), privacy.migrations_dir())


def main(argv: list[str] | None = None) -> int:
    return eventstore.service_main("parley_auth.migrate", migrate, argv)


if __name__ == "__main__":
    raise SystemExit(main())
