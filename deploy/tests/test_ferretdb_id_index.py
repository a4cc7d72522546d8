"""The local cluster's FerretDB wrapper (deploy/local/ferretdb): lookups by _id use an index,
and acknowledged writes survive a SIGKILL with synchronous=NORMAL (docs/decisions.md).

Each test starts its own wrapper process (ferretdb_wrapper.py): nothing shared is touched.
The query plans are read with Python's sqlite3 in read-only mode, for the exact statements
FerretDB 1.24's SQLite backend runs (internal/backends/sqlite/collection.go)."""

from __future__ import annotations

import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
from ferretdb_wrapper import built_binary, wrapper
from pymongo import UpdateOne

pytestmark = pytest.mark.integration

SUFFIX = "__ferretdb_id_expr"  # idindex.go
# FerretDB 1.24: IDColumn = _ferretdb_sjson->'$._id'; find/update/delete by _id
STATEMENTS = {
    "find": """SELECT _ferretdb_sjson FROM "{t}" WHERE _ferretdb_sjson->'$._id' = ?""",
    "update": """UPDATE "{t}" SET _ferretdb_sjson = ? WHERE _ferretdb_sjson->'$._id' = ?""",
    "delete": """DELETE FROM "{t}" WHERE _ferretdb_sjson->'$._id' IN (?, ?)""",
}


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_binary(tmp_path_factory.mktemp("ferretdb"))


def table_of(data: Path, database: str, collection: str) -> str:
    with closing(sqlite3.connect(f"file:{data / database}.sqlite?mode=ro", uri=True)) as db:
        row = db.execute(
            "SELECT table_name FROM _ferretdb_collections WHERE name = ?", (collection,)
        ).fetchone()
    assert row, f"no table for {database}.{collection}"
    return str(row[0])


def indexes(data: Path, database: str, table: str) -> set[str]:
    with closing(sqlite3.connect(f"file:{data / database}.sqlite?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (table,)
        ).fetchall()
    return {str(r[0]) for r in rows}


def wait_for_index(data: Path, database: str, table: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while table + SUFFIX not in indexes(data, database, table):
        assert time.monotonic() < deadline, f"no {table}{SUFFIX} after {timeout}s"
        time.sleep(0.1)


def plans(data: Path, database: str, table: str) -> dict[str, str]:
    with closing(sqlite3.connect(f"file:{data / database}.sqlite?mode=ro", uri=True)) as db:
        return {
            name: " / ".join(
                str(row[3])
                for row in db.execute(
                    "EXPLAIN QUERY PLAN " + sql.format(t=table), ['"k1"'] * sql.count("?")
                )
            )
            for name, sql in STATEMENTS.items()
        }


def test_lookups_by_id_use_the_wrappers_index(binary: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with wrapper(binary, data) as (client, _, _):
        docs = client.parley.users
        docs.insert_many([{"_id": f"k{i}", "n": i} for i in range(500)])
        table = table_of(data, "parley", "users")
        wait_for_index(data, "parley", table)  # about a second after the collection appears
        for name, plan in plans(data, "parley", table).items():
            assert f"SEARCH {table} USING INDEX {table}{SUFFIX}" in plan, (name, plan)
        # FerretDB ignores the index it did not create; a rename keeps table and index
        assert [i["name"] for i in docs.list_indexes()] == ["_id_"]
        docs.rename("people")
        assert table_of(data, "parley", "people") == table
        assert table + SUFFIX in indexes(data, "parley", table)
        assert client.parley.people.find_one({"_id": "k7"}) == {"_id": "k7", "n": 7}
        client.parley.people.drop()
        assert indexes(data, "parley", table) == set()


def test_without_the_wrappers_index_ferretdb_scans(binary: Path, tmp_path: Path) -> None:
    """The root cause, kept visible: FerretDB's own _id index (on _ferretdb_sjson->"_id") is not
    used for its own lookups. If this fails, FerretDB fixed it and the wrapper's index can go."""
    data = tmp_path / "data"
    with wrapper(binary, data, "-id-index=false") as (client, _, _):
        client.parley.users.insert_many([{"_id": f"k{i}"} for i in range(10)])
        table = table_of(data, "parley", "users")
        for name, plan in plans(data, "parley", table).items():
            assert f"SCAN {table}" in plan and "USING INDEX" not in plan, (name, plan)


def test_acknowledged_writes_survive_sigkill(binary: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with wrapper(binary, data) as (client, process, _):  # synchronous=NORMAL by default
        docs = client.parley.counters
        docs.insert_many([{"_id": f"k{i}", "n": 0} for i in range(200)])
        for i in range(200):
            docs.update_one({"_id": f"k{i}"}, {"$inc": {"n": 1}})
        for start in range(0, 200, 50):  # several commands, as the projectors write
            docs.bulk_write(
                [UpdateOne({"_id": f"k{i}"}, {"$inc": {"n": 10}}) for i in range(start, start + 50)]
            )
        docs.insert_one({"_id": "last", "n": -1})
        process.send_signal(signal.SIGKILL)  # right after the last acknowledgement
        process.wait(timeout=10)
    with wrapper(binary, data) as (client, _, _):
        found = {d["_id"]: d["n"] for d in client.parley.counters.find()}
    assert found == {**{f"k{i}": 11 for i in range(200)}, "last": -1}
