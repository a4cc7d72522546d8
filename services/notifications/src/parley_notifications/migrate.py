"""The notifications database: the event store's tables plus the directory table.

`python -m parley_notifications.migrate <dsn>` (what the local cluster and a deploy job run).
"""

from __future__ import annotations

from pathlib import Path

from parley_eventstore import migrate as eventstore


def migrations_dir() -> Path:
    return eventstore.package_migrations("parley_notifications")


async def migrate(dsn: str) -> None:
    await eventstore.migrate(dsn, migrations_dir())


def main(argv: list[str] | None = None) -> int:
    return eventstore.service_main("parley_notifications.migrate", migrate, argv)


if __name__ == "__main__":
    raise SystemExit(main())
