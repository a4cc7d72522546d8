"""The notification and preferences aggregates and the delivery decision, with no database."""

import pytest
from parley_contracts.notifications import (
    NotificationCreated,
    NotificationEmailed,
    NotificationPreferencesUpdated,
    NotificationRead,
)
from parley_notifications.domain import (
    NOTHING,
    Delivery,
    Notification,
    NotificationNotFound,
    NotYourNotification,
    Preferences,
    TooManyMuted,
    decide_delivery,
    notification_id,
    preview_of,
)


def created() -> Notification:
    n = Notification("n1")
    n.replay(
        [
            (
                1,
                NotificationCreated(
                    notification_id="n1",
                    user_id="bob",
                    conversation_id="c1",
                    message_id="m1",
                    sender_id="ada",
                    preview="hi",
                ),
            )
        ]
    )
    return n


def test_notification_id_is_deterministic_per_message_and_recipient() -> None:
    assert notification_id("m1", "bob") == notification_id("m1", "bob")
    assert notification_id("m1", "bob") != notification_id("m1", "eve")
    assert notification_id("m1", "bob") != notification_id("m2", "bob")


def test_create_records_created_with_a_140_character_preview() -> None:
    n = Notification("n1")
    n.create("bob", "c1", "m1", "ada", "x" * 500)
    assert n.pending == [
        NotificationCreated(
            notification_id="n1",
            user_id="bob",
            conversation_id="c1",
            message_id="m1",
            sender_id="ada",
            preview="x" * 140,
        )
    ]
    assert preview_of("short") == "short"


def test_creating_an_existing_notification_records_nothing() -> None:
    n = created()
    n.create("bob", "c1", "m1", "ada", "hi again")
    assert n.pending == []


def test_mark_read_by_the_recipient_once() -> None:
    n = created()
    n.mark_read("bob")
    assert n.pending == [NotificationRead(notification_id="n1", user_id="bob")]
    n.mark_read("bob")
    assert len(n.pending) == 1


def test_mark_read_by_someone_else_or_of_a_missing_one_is_refused() -> None:
    with pytest.raises(NotYourNotification):
        created().mark_read("eve")
    with pytest.raises(NotificationNotFound):
        Notification("n2").mark_read("bob")


def test_mark_emailed_once() -> None:
    n = created()
    n.mark_emailed()
    n.mark_emailed()
    assert n.pending == [NotificationEmailed(notification_id="n1", user_id="bob")]
    assert n.emailed


def test_preferences_default_to_in_app_only() -> None:
    p = Preferences("bob")
    assert (p.in_app, p.email, p.muted) == (True, False, ())


def test_preferences_update_records_the_whole_state_and_a_same_update_nothing() -> None:
    p = Preferences("bob")
    p.update(True, True, ["c2", "c1", "c1"])
    assert p.pending == [
        NotificationPreferencesUpdated(
            user_id="bob", in_app=True, email=True, muted_conversations=["c1", "c2"]
        )
    ]
    p.update(True, True, ["c1", "c2"])
    assert len(p.pending) == 1
    restored = Preferences("bob")
    restored.restore(p.snapshot())
    assert (restored.in_app, restored.email, restored.muted) == (True, True, ("c1", "c2"))


def test_too_many_muted_conversations_are_refused() -> None:
    with pytest.raises(TooManyMuted):
        Preferences("bob").update(True, False, [f"c{i}" for i in range(1001)])


def prefs(in_app: bool = True, email: bool = False, muted: tuple[str, ...] = ()) -> Preferences:
    p = Preferences("bob")
    p.in_app, p.email, p.muted = in_app, email, muted
    return p


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (prefs(), Delivery(in_app=True, email=False)),
        (prefs(email=True), Delivery(in_app=True, email=True)),
        (prefs(in_app=False, email=True), NOTHING),
        (prefs(email=True, muted=("c1",)), NOTHING),
        (prefs(email=True, muted=("c2",)), Delivery(in_app=True, email=True)),
    ],
)
def test_delivery_decision(p: Preferences, expected: Delivery) -> None:
    assert decide_delivery(p, "c1") == expected


def test_mentions_pierce_a_muted_conversation_unless_they_are_muted_too() -> None:
    muted = prefs(email=True, muted=("c1",))
    assert decide_delivery(muted, "c1", mentioned=True) == Delivery(in_app=True, email=True)
    assert decide_delivery(muted, "c1", mentioned=False) == NOTHING
    muted.muted_mentions = ("c1",)
    assert decide_delivery(muted, "c1", mentioned=True) == NOTHING
    assert decide_delivery(prefs(in_app=False), "c1", mentioned=True) == NOTHING


def test_muted_mentions_are_part_of_the_whole_state_and_the_snapshot() -> None:
    p = Preferences("bob")
    p.update(True, False, ["c1"], ["c1", "c1"])
    p.update(True, False, ["c1"], ["c1"])  # the same state: nothing
    assert p.pending == [
        NotificationPreferencesUpdated(
            user_id="bob",
            in_app=True,
            email=False,
            muted_conversations=["c1"],
            muted_mentions=["c1"],
        )
    ]
    restored = Preferences("bob")
    restored.restore(p.snapshot())
    assert restored.muted_mentions == ("c1",)
    restored.restore({"in_app": True, "email": False, "muted": []})  # a snapshot before mentions
    assert restored.muted_mentions == ()
    with pytest.raises(TooManyMuted):
        Preferences("bob").update(True, False, [], [f"c{i}" for i in range(1001)])


def test_a_notification_says_whether_it_is_a_mention() -> None:
    n = Notification("n1")
    n.create("bob", "c1", "m1", "ada", "hi @bob", mention=True)
    (created,) = n.pending
    assert created.mention is True and created.kind == "message"
