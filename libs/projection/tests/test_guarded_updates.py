"""The idempotence rule itself, without servers: what is already applied is skipped, the
version travels with every update, and only a document's first event may create it."""

from parley_projection.apply import Versioned, guarded_updates
from parley_projection.projection import Write


def item(doc: str, stream: str, version: int, collection: str = "c") -> Versioned:
    return Versioned(Write(collection, doc, {"$inc": {"n": 1}}), stream, version)


def test_events_at_or_below_the_stored_version_are_skipped() -> None:
    ops = guarded_updates(
        [item("d", "s", 3), item("d", "s", 4), item("d", "s", 5)], {("c", "d", "s"): 4}
    )
    assert len(ops["c"]) == 1
    (update,) = ops["c"]
    assert update._doc == {"$inc": {"n": 1}, "$set": {"_v.s": 5}}
    assert update._upsert is False


def test_duplicates_inside_one_batch_apply_once() -> None:
    ops = guarded_updates([item("d", "s", 1), item("d", "s", 1), item("d", "s", 2)], {})
    assert [op._doc["$set"]["_v.s"] for op in ops["c"]] == [1, 2]
    assert [op._upsert for op in ops["c"]] == [True, False]


def test_a_folded_view_tracks_each_source_stream_separately() -> None:
    ops = guarded_updates(
        [item("total", "a", 1), item("total", "b", 1), item("total", "a", 1)],
        {("c", "total", "b"): 1},
    )
    assert [op._doc["$set"] for op in ops["c"]] == [{"_v.a": 1}]


def test_dotted_stream_ids_do_not_become_paths() -> None:
    ops = guarded_updates([item("d", "x.y", 1)], {})
    assert ops["c"][0]._doc["$set"] == {"_v.x_y": 1}
