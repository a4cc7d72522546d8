"""Operations by _id against a Mongo-wire server as the collection grows (1k, 10k, 50k docs):
find_one, update_one and bulk_write of 50 UpdateOne, each for a fixed time, one client.

Made for FerretDB 1.24's SQLite backend, whose lookups by _id scan the whole table unless the
wrapper's _id expression index exists (docs/decisions.md); not part of `make bench`.

    MONGO_URL=mongodb://127.0.0.1:27041/ uv run python -m bench.ferretdb_id
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable

from parley_testing.infra import Server, locate
from pymongo import MongoClient, UpdateOne

SIZES = (1_000, 10_000, 50_000)
SECONDS = 2.0
BULK = 50


def document(i: int) -> dict[str, object]:
    return {
        "_id": str(uuid.UUID(int=i)),
        "handle": f"user{i}",
        "display_name": f"User number {i}",
        "email": f"user{i}@example.org",
        "bio": "x" * 200,
        "_v": 1,
    }


def rate(action: Callable[[], int], seconds: float = SECONDS) -> float:
    done, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        done += action()
    return done / elapsed


def main() -> None:
    client: MongoClient[dict[str, object]] = MongoClient(locate(Server.MONGO).address)
    db = client[f"bench_id_{uuid.uuid4().hex[:8]}"]
    docs = db.users
    results: dict[int, dict[str, float]] = {}
    have = 0
    try:
        for size in SIZES:
            started = time.perf_counter()
            for start in range(have, size, 1_000):
                docs.insert_many([document(i) for i in range(start, min(size, start + 1_000))])
            inserts = (size - have) / (time.perf_counter() - started)
            have = size
            time.sleep(1.5)  # the wrapper indexes new collections within a second

            def find(size: int = size) -> int:
                docs.find_one({"_id": str(uuid.UUID(int=random.randrange(size)))})
                return 1

            def update(size: int = size) -> int:
                key = str(uuid.UUID(int=random.randrange(size)))
                docs.update_one({"_id": key}, {"$inc": {"_v": 1}})
                return 1

            def bulk(size: int = size) -> int:
                ops = [
                    UpdateOne(
                        {"_id": str(uuid.UUID(int=random.randrange(size)))}, {"$inc": {"_v": 1}}
                    )
                    for _ in range(BULK)
                ]
                docs.bulk_write(ops, ordered=False)
                return BULK

            results[size] = {
                "insert_many_docs_per_s": round(inserts),
                "find_one_per_s": round(rate(find)),
                "update_one_per_s": round(rate(update)),
                "bulk_write_50_updates_per_s": round(rate(bulk)),
            }
            print(json.dumps({size: results[size]}), flush=True)
    finally:
        client.drop_database(db.name)
        client.close()


if __name__ == "__main__":
    main()
