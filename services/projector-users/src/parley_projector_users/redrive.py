"""`python -m parley_projector_users.redrive [--limit N]`: put the users projector's parked
records (projector-users.dlq) back through the projection, once their cause is fixed."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from parley_projection.redrive import redrive
from parley_projection.runtime import Options
from pymongo import AsyncMongoClient

from parley_projector_users.config import Settings
from parley_projector_users.views import users_projection


async def main_async(limit: int | None) -> int:
    settings = Settings()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        options = Options(bootstrap_servers=settings.kafka_bootstrap_servers)
        return await redrive(
            client[settings.mongo_db], users_projection(settings.name), options, limit
        )
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=None, help="at most this many records")
    taken = asyncio.run(main_async(parser.parse_args().limit))
    print(f"re-drove {taken} parked record(s)")


if __name__ == "__main__":
    main()
