"""The chat database: the event store's tables plus the attachments table.

`python -m parley_chat.migrate <dsn>` (what the local cluster and a deploy job run).
"""

from __future__ import annotations

from parley_commandkit.entry import migrate_main, migration

migrate = migration("parley_chat")


def main(argv: list[str] | None = None) -> int:
    return migrate_main("parley_chat", argv)


if __name__ == "__main__":
    raise SystemExit(main())
