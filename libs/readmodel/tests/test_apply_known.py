"""`Known` (documents this process saw exist) only spares the optimistic insert: it never
changes what ends up in the store, even when it is wrong."""

from __future__ import annotations

from typing import Any

import pytest
from parley_readmodel.aliases import physical
from parley_readmodel.apply import Change, Known, apply_changes

pytestmark = pytest.mark.integration


def change(doc: str, version: int, **update: Any) -> Change:
    return Change("c", doc, {"$set": update} if update else {"$inc": {"n": 1}}, doc, version)


async def test_known_documents_skip_the_insert_and_a_wrong_hint_still_creates(db: Any) -> None:
    known = Known()
    await apply_changes(db, 1, [change("a", 1, title="t")], guard=False, known=known)
    assert known.of(1) == {("c", "a")}
    # known to exist: updated in place, the replayed version 1 still dropped
    await apply_changes(db, 1, [change("a", 1), change("a", 2)], guard=False, known=known)
    # a hint that is wrong (never written, or gone): read, found missing, created
    known.add(1, [("c", "ghost")])
    await apply_changes(db, 1, [change("ghost", 1, title="g")], guard=False, known=known)
    docs = {d["_id"]: d for d in await db[physical("c", 1)].find().to_list(None)}
    assert docs["a"]["n"] == 1 and docs["a"]["_v"] == {"a": 2}
    assert docs["ghost"]["title"] == "g" and docs["ghost"]["_v"] == {"ghost": 1}
    assert known.of(2) == set()  # per generation


def test_known_forgets_wholesale_past_its_limit() -> None:
    known = Known(limit=2)
    known.add(1, [("c", "1"), ("c", "2"), ("c", "3")])
    known.add(1, [("c", "4")])
    assert known.of(1) == {("c", "4")}
