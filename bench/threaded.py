"""The `eventsourcing` library's PostgreSQL recorder (synchronous psycopg), driven by threads."""

from __future__ import annotations

import uuid
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

from bench.common import DURATION_S, Figures, threaded_closed_loop


def eventsourcing_figures(concurrency: int, db: dict[str, Any], state: bytes) -> Figures:
    datastore = PostgresDatastore(
        db["dbname"], db["host"], db["port"], db["user"], db["password"], pool_size=concurrency
    )
    recorder = PostgresApplicationRecorder(datastore)
    recorder.create_table()

    def op() -> None:
        recorder.insert_events([StoredEvent(uuid.uuid4(), 1, "bench:MessageSent", state)])

    try:
        return threaded_closed_loop(concurrency, DURATION_S, op)
    finally:
        datastore.close()
