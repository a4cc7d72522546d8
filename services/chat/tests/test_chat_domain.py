"""The conversation aggregate's rules, with no database: participants, seq, read marks and the
exactness of `unread_after` (inside the window, at its edge and beyond it), direct dedupe,
deleted messages, and a snapshot that stays bounded."""

from __future__ import annotations

import json
import random

import pytest
from parley_chat.domain import (
    WINDOW,
    Conversation,
    ConversationConflict,
    ConversationNotFound,
    InvalidCommand,
    MessageFacts,
    MessageNotFound,
    NotAllowed,
    direct_conversation_id,
    new_conversation_id,
)
from parley_contracts.chat import (
    ConversationCreated,
    MessageDeleted,
    MessageSent,
    MessagesRead,
    ParticipantAdded,
    ParticipantRemoved,
)

A, B, C, D = "alice", "bob", "carol", "dave"


def saved(conversation: Conversation) -> Conversation:
    """Pretend the pending events were appended; then round-trip through a snapshot so every
    test also checks that snapshot + restore keep the state."""
    conversation.mark_saved(conversation.next_version)
    copy = Conversation(conversation.id)
    copy.restore(json.loads(json.dumps(conversation.snapshot())))
    copy.version = conversation.version
    return copy


def group(*people: str) -> Conversation:
    conversation = Conversation("g1")
    conversation.create(people[0], people[1:], "team")
    return saved(conversation)


def send(conversation: Conversation, sender: str, n: int = 1) -> list[str]:
    ids = []
    for _ in range(n):
        message_id = f"m{conversation.seq + 1}"
        conversation.send(message_id, sender, f"hello {conversation.seq}", None)
        ids.append(message_id)
    return ids


def last_read(conversation: Conversation) -> MessagesRead:
    event = conversation.pending[-1]
    assert isinstance(event, MessagesRead)
    return event


def brute_unread(history: list[tuple[int, str, bool]], user: str, up_to: int) -> int:
    return sum(1 for seq, sender, gone in history if seq > up_to and sender != user and not gone)


def test_create_group_includes_the_creator_once() -> None:
    conversation = Conversation("g1")
    assert conversation.create(A, [B, A, C], "team")
    (event,) = conversation.pending
    assert event == ConversationCreated(
        conversation_id="g1", kind="group", title="team", participant_ids=[A, B, C], created_by=A
    )


def test_create_needs_someone_else() -> None:
    with pytest.raises(InvalidCommand):
        Conversation("g1").create(A, [A], None)


def test_direct_conversation_has_a_derived_id_and_is_not_duplicated() -> None:
    cid = direct_conversation_id(A, B)
    assert cid == direct_conversation_id(B, A)
    assert cid != direct_conversation_id(A, C)
    conversation = Conversation(cid)
    assert conversation.create(A, [B], None)
    assert conversation.kind == "direct"
    conversation = saved(conversation)
    assert conversation.create(B, [A], None) is False  # the other side starts it: same one
    assert conversation.pending == []
    assert new_conversation_id(B, [A], None) == cid
    assert new_conversation_id(B, [A], "project") != cid
    with pytest.raises(ConversationConflict):
        conversation.create(A, [B, C], None)  # the id exists, the request is something else
    with pytest.raises(InvalidCommand):
        Conversation("random").create(A, [B], None)  # a direct id must be the derived one


def test_two_people_with_a_title_is_a_group() -> None:
    conversation = Conversation("g2")
    conversation.create(A, [B], "project")
    assert conversation.kind == "group"


def test_seq_counts_messages_without_gaps_and_only_participants_send() -> None:
    conversation = group(A, B)
    send(conversation, A, 2)
    send(conversation, B)
    seqs = [e.seq for e in conversation.pending if isinstance(e, MessageSent)]
    assert seqs == [1, 2, 3]
    with pytest.raises(ConversationNotFound):
        conversation.send("mx", C, "hi", None)
    with pytest.raises(ConversationNotFound):
        Conversation("nope").send("mx", A, "hi", None)


@pytest.mark.parametrize("content", ["", "   ", "x" * 4001])
def test_content_limits(content: str) -> None:
    with pytest.raises(InvalidCommand):
        group(A, B).send("m1", A, content, None)


def test_content_is_trimmed_and_4000_characters_pass() -> None:
    conversation = group(A, B)
    conversation.send("m1", A, "  " + "x" * 4000 + "\n", "c-1")
    event = conversation.pending[-1]
    assert isinstance(event, MessageSent)
    assert event.content == "x" * 4000
    assert event.client_message_id == "c-1"


def test_removed_participant_can_no_longer_send_and_added_one_can() -> None:
    conversation = group(A, B, C)
    conversation.remove_participant(C, C)
    with pytest.raises(ConversationNotFound):
        conversation.send("m1", C, "hi", None)
    conversation.add_participant(D, A)
    send(conversation, D)
    assert conversation.participants == [A, B, D]
    assert [type(e) for e in conversation.pending] == [
        ParticipantRemoved,
        ParticipantAdded,
        MessageSent,
    ]


def test_who_may_add_and_remove() -> None:
    conversation = group(A, B, C)
    with pytest.raises(ConversationNotFound):
        conversation.add_participant(D, "stranger")
    conversation.add_participant(D, "admin-1", by_admin=True)
    with pytest.raises(NotAllowed):
        conversation.remove_participant(C, B)  # neither self, creator nor admin
    conversation.remove_participant(C, A)  # the creator
    conversation.remove_participant(D, "admin-1", by_admin=True)
    conversation.remove_participant(D, D)  # gone already: nothing more
    assert [e.user_id for e in conversation.pending if isinstance(e, ParticipantRemoved)] == [C, D]
    conversation.remove_participant(A, A)
    with pytest.raises(ConversationNotFound):
        conversation.remove_participant(B, A)  # the creator who left is no longer special


def test_direct_conversations_keep_their_two_people() -> None:
    conversation = Conversation(direct_conversation_id(A, B))
    conversation.create(A, [B], None)
    with pytest.raises(ConversationConflict):
        conversation.add_participant(C, A)
    with pytest.raises(ConversationConflict):
        conversation.remove_participant(B, B)


def test_read_to_latest_gives_zero_and_counts_only_others() -> None:
    conversation = group(A, B, C)
    send(conversation, A, 2)
    send(conversation, B, 3)
    conversation.mark_read(A, "m2")
    assert last_read(conversation).unread_after == 3
    conversation.mark_read(B, "m2")
    assert last_read(conversation).unread_after == 0  # the rest is B's own
    conversation.mark_read(C)
    assert (last_read(conversation).up_to_seq, last_read(conversation).unread_after) == (5, 0)
    assert conversation.unread == {A: 3, B: 0, C: 0}


def test_read_marks_only_move_forward() -> None:
    conversation = group(A, B)
    send(conversation, B, 3)
    conversation.mark_read(A)
    before = len(conversation.pending)
    assert conversation.mark_read(A, "m1") == 3
    assert len(conversation.pending) == before
    with pytest.raises(MessageNotFound):
        conversation.mark_read(A, "nope")


def test_deleted_messages_are_not_unread_and_delete_rules() -> None:
    conversation = group(A, B, C)
    send(conversation, B, 3)  # m1..m3 from B
    with pytest.raises(NotAllowed):
        conversation.delete_message("m2", A)  # not the sender
    conversation.delete_message("m2", B)
    assert conversation.unread == {A: 2, B: 0, C: 2}
    conversation.delete_message("m2", B)  # deleted already: nothing more
    conversation.delete_message("m3", "admin-1", by_admin=True)
    assert conversation.unread == {A: 1, B: 0, C: 1}
    deleted = [e for e in conversation.pending if isinstance(e, MessageDeleted)]
    assert [(e.seq, e.sender_id, e.deleted_by) for e in deleted] == [
        (2, B, B),
        (3, B, "admin-1"),
    ]
    conversation.mark_read(A, "m1")
    assert last_read(conversation).unread_after == 0
    with pytest.raises(MessageNotFound):
        conversation.delete_message("m9", B)


def test_deleting_a_message_already_read_changes_no_counter() -> None:
    conversation = group(A, B)
    send(conversation, B, 2)
    conversation.mark_read(A, "m1")
    conversation.delete_message("m1", B)
    assert conversation.unread[A] == 1


def test_newcomer_starts_with_nothing_unread() -> None:
    conversation = group(A, B, C)
    send(conversation, A, 4)
    conversation.add_participant(D, A)
    assert conversation.unread[D] == 0
    send(conversation, B)
    conversation.delete_message("m1", A)  # before D joined: not D's
    assert conversation.unread[D] == 1
    conversation.mark_read(D)
    assert last_read(conversation).unread_after == 0


def test_old_messages_come_from_the_handlers_lookup() -> None:
    conversation = group(A, B)
    ids = send(conversation, B, WINDOW + 10)
    old = MessageFacts(ids[0], 1, B, False)
    with pytest.raises(MessageNotFound):
        conversation.delete_message(ids[0], B)  # outside the window, no facts given
    conversation.delete_message(ids[0], B, old=old)
    assert conversation.unread[A] == WINDOW + 9
    with pytest.raises(NotAllowed):
        conversation.delete_message(ids[1], A, old=MessageFacts(ids[1], 2, B, False))
    conversation.mark_read(A, ids[4], old=MessageFacts(ids[4], 5, B, False))
    assert last_read(conversation).up_to_seq == 5


@pytest.mark.parametrize("offset", [-2, -1, 0, 1, 2])
def test_unread_after_is_exact_at_the_window_edge(offset: int) -> None:
    conversation = group(A, B)
    history: list[tuple[int, str, bool]] = []
    for i in range(WINDOW + 40):
        sender = B if i % 3 else A
        conversation.send(f"m{i + 1}", sender, "x", None)
        history.append((i + 1, sender, False))
    conversation = saved(conversation)
    first = conversation.recent[0].seq
    up_to = first - 1 + offset
    facts = MessageFacts(f"m{up_to}", up_to, history[up_to - 1][1], False)
    conversation.mark_read(A, f"m{up_to}", old=facts)
    truth = brute_unread(history, A, up_to)
    got = last_read(conversation).unread_after
    if offset >= 0:  # from the window's edge (first - 1) on: exact
        assert got == truth
    else:  # older than the window: an upper bound, off by at most the messages in between
        assert truth <= got <= truth + (first - 1 - up_to)
        assert got > truth  # here the message in between is A's own: the bound shows


def test_unread_after_beyond_the_window_is_an_upper_bound_and_exact_at_latest() -> None:
    conversation = group(A, B)
    history: list[tuple[int, str, bool]] = []
    rng = random.Random(7)
    for i in range(3 * WINDOW):
        sender = rng.choice([A, B])
        conversation.send(f"m{i + 1}", sender, "x", None)
        history.append((i + 1, sender, False))
    conversation = saved(conversation)
    up_to = 10
    facts = MessageFacts(f"m{up_to}", up_to, history[up_to - 1][1], False)
    conversation.mark_read(A, f"m{up_to}", old=facts)
    estimate = last_read(conversation).unread_after
    truth = brute_unread(history, A, up_to)
    assert truth <= estimate <= truth + (conversation.recent[0].seq - 1 - up_to)
    conversation = saved(conversation)
    conversation.mark_read(A)
    assert last_read(conversation).unread_after == 0


def test_unread_after_matches_brute_force_under_random_play() -> None:
    """Random sends, deletes, joins and read marks inside the window: every MessagesRead
    carries exactly the brute-force count, and the counters match it too."""
    rng = random.Random(11)
    people = [A, B, C]
    conversation = group(*people)
    history: dict[int, list[object]] = {}  # seq -> [sender, deleted]
    for step in range(600):
        if step % 97 == 0:
            conversation = saved(conversation)
        action = rng.random()
        members = conversation.participants
        user = rng.choice(members)
        if action < 0.6:
            send(conversation, user)
            history[conversation.seq] = [user, False]
        elif action < 0.7 and conversation.recent:
            entry = rng.choice(list(conversation.recent))
            conversation.delete_message(entry.message_id, entry.sender_id)
            history[entry.seq][1] = True
        elif action < 0.72 and D not in members:
            conversation.add_participant(D, A if A in members else user)
        else:
            window = [m.message_id for m in conversation.recent]
            target = rng.choice([None, *window]) if window else None
            before = len(conversation.pending)
            conversation.mark_read(user, target)
            if len(conversation.pending) > before:
                event = last_read(conversation)
                truth = sum(
                    1
                    for seq, (sender, deleted) in history.items()
                    if seq > event.up_to_seq and sender != user and not deleted
                )
                assert event.unread_after == truth
        for member, pos in conversation.read_pos.items():
            truth = sum(
                1
                for seq, (sender, deleted) in history.items()
                if seq > pos and sender != member and not deleted
            )
            assert conversation.unread[member] == truth, (step, member)


def test_snapshot_stays_bounded_after_many_messages() -> None:
    conversation = group(A, B, C)
    sizes = []
    for n in (1_000, 10_000):
        while conversation.seq < n:
            send(conversation, rng_sender(conversation.seq))
        conversation = saved(conversation)
        sizes.append(len(json.dumps(conversation.snapshot())))
    assert len(conversation.recent) == WINDOW
    assert sizes[1] <= sizes[0] * 1.1  # ten times the messages, the same size
    assert sizes[1] < 32_000


def rng_sender(seq: int) -> str:
    return (A, B, C)[seq % 3]


def test_keyed_direct_ids_cannot_be_computed_without_the_secret() -> None:
    keyed = direct_conversation_id(A, B, "s3cret")
    assert keyed == direct_conversation_id(B, A, "s3cret")
    assert keyed not in (direct_conversation_id(A, B), direct_conversation_id(A, B, "other"))
    assert new_conversation_id(A, [B], None, "s3cret") == keyed
    conversation = Conversation(keyed)
    with pytest.raises(InvalidCommand):  # the unkeyed id is refused once a secret is set
        Conversation(direct_conversation_id(A, B)).create(A, [B], None, secret="s3cret")
    assert conversation.create(A, [B], None, secret="s3cret")
