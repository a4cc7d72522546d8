"""Secondary indexes a projection declares (`Projection.indexes`), created on every generation
it writes: by the live projector before its first write to a generation, and by the rebuild
before it fills a new one. `createIndexes` with the same keys and name is a no-op, so every
replica (and every restart) may run it.

FerretDB 1.24 accepts `createIndexes` (compound and unique keys too), though its SQLite backend
pushes only `_id` filters down; MongoDB 7 uses them for the keyset queries of the gateway.
One index per command: FerretDB 1.24 drops the connection when one `createIndexes` names two
or more indexes that all exist already (seen on this machine), which a restart always does.
"""

from __future__ import annotations

from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from parley_readmodel.aliases import physical
from parley_readmodel.projection import Projection

DB = AsyncDatabase[dict[str, Any]]


def index_name(keys: tuple[tuple[str, int], ...]) -> str:
    return "_".join(f"{field}_{direction}" for field, direction in keys)


async def ensure_indexes(db: DB, projection: Projection, generation: int) -> None:
    for logical, specs in projection.indexes.items():
        for keys in specs:
            model = IndexModel(list(keys), name=index_name(keys))
            await db[physical(logical, generation)].create_indexes([model])
