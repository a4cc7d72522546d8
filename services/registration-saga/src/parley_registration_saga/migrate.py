"""The saga database: the event store's tables (its outbox) plus the sagas table.

`python -m parley_registration_saga.migrate <dsn>` (what the local cluster and a deploy job run).
"""

from __future__ import annotations

from pathlib import Path

from parley_eventstore import migrate as eventstore


def migrations_dir() -> Path:
    return eventstore.package_migrations("parley_registration_saga")


async def migrate(dsn: str) -> None:
    await eventstore.migrate(dsn, migrations_dir())


def main(argv: list[str] | None = None) -> int:
    return eventstore.service_main("parley_registration_saga.migrate", migrate, argv)


if __name__ == "__main__":
    raise SystemExit(main())
