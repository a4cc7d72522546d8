"""The pure planning step: duplicates dropped, updates coalesced only where one update
document can say both, re-driven versions applied once."""

from __future__ import annotations

from parley_readmodel.apply import Change, Stored, merge, plan, to_ops


def ch(doc: str, update: dict, version: int, stream: str = "s", redrive: bool = False) -> Change:
    return Change("c", doc, update, stream, version, redrive)


def test_duplicates_and_stored_versions_are_dropped_and_the_rest_coalesced() -> None:
    changes = [ch("d", {"$inc": {"n": 1}}, v) for v in (3, 4, 4, 5, 2)]
    out = plan(changes, {("c", "d"): Stored({"s": 3})}, set())
    (segment,) = out[("c", "d")]
    assert segment.update == {"$inc": {"n": 2}, "$set": {"_v.s": 5}}
    assert segment.expects == {"s": 3}
    (op,) = to_ops(out, guard=True)["c"]
    assert op._filter == {"_id": "d", "_v.s": 3}
    assert to_ops(out, guard=False)["c"][0]._filter == {"_id": "d"}


def test_conflicting_operators_start_a_new_update() -> None:
    changes = [
        ch("d", {"$inc": {"n": 1}}, 1),
        ch("d", {"$set": {"n": 0}}, 2),
        ch("d", {"$inc": {"n": 1}}, 3),
    ]
    segments = plan(changes, {}, set())[("c", "d")]
    assert [s.update for s in segments] == [
        {"$inc": {"n": 1}, "$set": {"_v.s": 1}},
        {"$set": {"n": 0, "_v.s": 2}},
        {"$inc": {"n": 1}, "$set": {"_v.s": 3}},
    ]
    assert [s.expects for s in segments] == [{"s": None}, {"s": 1}, {"s": 2}]


def test_merge_refuses_parent_child_paths_and_leaves_the_target_intact() -> None:
    into = {"$set": {"a.b": 1}}
    assert not merge(into, {"$set": {"a": {}}})
    assert into == {"$set": {"a.b": 1}}
    assert merge(into, {"$addToSet": {"tags": "x"}}) and merge(into, {"$addToSet": {"tags": "y"}})
    assert into["$addToSet"] == {"tags": {"$each": ["x", "y"]}}


def test_a_redriven_parked_version_applies_once() -> None:
    stored = {("c", "d"): Stored({"s": 9})}
    late = ch("d", {"$inc": {"boom": 1}}, 7, redrive=True)
    (segment,) = plan([late], stored, {("s", 7)})[("c", "d")]
    assert segment.update == {"$inc": {"boom": 1}, "$addToSet": {"_x.s": {"$each": [7]}}}
    assert plan([late], {("c", "d"): Stored({"s": 9}, {"s": {7}})}, {("s", 7)}) == {}
    assert plan([late], stored, set()) == {}  # not parked: an old duplicate
    assert plan([ch("d", {"$inc": {"boom": 1}}, 7)], stored, {("s", 7)}) == {}  # not a re-drive


def test_a_document_the_batch_creates_is_inserted_as_what_the_upsert_would_make() -> None:
    from pymongo import InsertOne, UpdateOne

    changes = [
        ch("new", {"$set": {"a.b": 1}, "$inc": {"n": 2}}, 1),
        ch("new", {"$addToSet": {"tags": {"$each": ["x", "x", "y"]}}, "$inc": {"n": 1}}, 2),
        ch("old", {"$inc": {"n": 1}}, 5),
    ]
    ops = to_ops(plan(changes, {("c", "old"): Stored({"s": 4})}, set()), guard=True)["c"]
    insert, update = ops
    assert isinstance(insert, InsertOne) and isinstance(update, UpdateOne)
    assert insert._doc == {
        "_id": "new",
        "a": {"b": 1},
        "n": 3,
        "tags": ["x", "y"],
        "_v": {"s": 2},
    }


def test_an_update_that_cannot_be_said_as_a_document_stays_an_upsert() -> None:
    from pymongo import UpdateOne

    (op,) = to_ops(plan([ch("new", {"$pull": {"tags": "x"}}, 1)], {}, set()), guard=False)["c"]
    assert isinstance(op, UpdateOne)


def test_a_handler_may_not_touch_the_runtimes_version_fields() -> None:
    import pytest

    for update in ({"$set": {"_v.s": 9}}, {"$unset": {"_x": ""}}, {"$inc": {"_v": 1}}):
        with pytest.raises(ValueError, match="reserved"):
            plan([ch("d", update, 1)], {}, set())
    # a field that merely starts with the same letters is the handler's own
    assert plan([ch("d", {"$set": {"_version": 1}}, 1)], {}, set())
