"""The realtime database: tickets, presence, last seen (no event store tables: nothing here is
a domain fact).

`python -m parley_realtime.migrate <dsn>` (what the local cluster and a deploy job run).
"""

from __future__ import annotations

from pathlib import Path

from parley_eventstore import migrate as eventstore


def migrations_dir() -> Path:
    return eventstore.package_migrations("parley_realtime")


async def migrate(dsn: str) -> None:
    await eventstore.migrate(dsn, migrations_dir(), event_store=False)


def main(argv: list[str] | None = None) -> int:
    return eventstore.service_main("parley_realtime.migrate", migrate, argv)


if __name__ == "__main__":
    raise SystemExit(main())
