"""The saga's state machine without I/O: steps, retries, timeouts, compensation, failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from parley_messaging.saga import SagaCommand, SagaReply
from parley_registration_saga.domain import Policy, Saga

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = Policy(
    step_timeout=timedelta(seconds=2),
    max_attempts=3,
    backoff_base=timedelta(seconds=1),
    backoff_max=timedelta(seconds=3),
    compensation_attempts=2,
)
USER = "0d6e8c1e-1d1f-4d59-9d7e-3b8f3c1c0a01"


def start() -> tuple[Saga, list[SagaCommand]]:
    return Saga.start(USER, "ada@example.com", "Ada", "registration-saga.replies", T0, POLICY)


def reply(command: SagaCommand, outcome: str = "succeeded", reason: str = "") -> SagaReply:
    return SagaReply(command.id, command.context, command.subject, command.saga_id, outcome, reason)  # type: ignore[arg-type]


def run_forward(saga: Saga, first: SagaCommand, steps: int) -> SagaCommand:
    command = first
    for _ in range(steps):
        (command,) = saga.on_reply(reply(command), T0, POLICY)
    return command


def test_happy_path_sends_the_four_steps_in_order_and_completes() -> None:
    saga, (command,) = start()
    sent = [(command.context, command.name)]
    for _ in range(3):
        (command,) = saga.on_reply(reply(command), T0, POLICY)
        sent.append((command.context, command.name))
    assert saga.on_reply(reply(command), T0, POLICY) == []
    assert sent == [
        ("users", "CreateProfile"),
        ("notifications", "PrepareNotifications"),
        ("users", "AssignDefaultRole"),
        ("auth", "ActivateAccount"),
    ]
    assert saga.status == "completed" and saga.deadline is None
    assert command.data == {"user_id": USER, "email": "ada@example.com", "name": "Ada"}


def test_command_ids_are_stable_across_retries_and_distinct_across_steps() -> None:
    saga, (first,) = start()
    assert saga.on_deadline(T0 + timedelta(seconds=2), POLICY) == []  # timed out: backoff
    (retry,) = saga.on_deadline(T0 + timedelta(seconds=3), POLICY)
    assert retry.id == first.id == f"{USER}/create_profile"
    (second,) = saga.on_reply(reply(retry), T0 + timedelta(seconds=4), POLICY)
    assert second.id == f"{USER}/prepare_notifications"


def test_replies_that_do_not_match_the_current_action_change_nothing() -> None:
    saga, (first,) = start()
    (_second,) = saga.on_reply(reply(first), T0, POLICY)
    before = saga.to_json()
    assert saga.on_reply(reply(first), T0, POLICY) == []  # duplicate of a settled step
    assert saga.to_json() == before


def test_deadline_not_yet_due_does_nothing() -> None:
    saga, _ = start()
    assert saga.on_deadline(T0 + timedelta(seconds=1), POLICY) == []
    assert saga.attempt == 1 and saga.awaiting == "reply"


def test_timeouts_retry_with_growing_backoff_then_compensate_including_the_step() -> None:
    saga, (first,) = start()
    (second,) = saga.on_reply(reply(first), T0, POLICY)  # profile created
    now = T0
    retries = []
    for _ in range(2):
        now = saga.deadline  # type: ignore[assignment]
        assert saga.on_deadline(now, POLICY) == []  # timed out
        retries.append(saga.deadline - now)  # type: ignore[operator]
        now = saga.deadline  # type: ignore[assignment]
        (again,) = saga.on_deadline(now, POLICY)
        assert again.id == second.id
    assert retries == [timedelta(seconds=1), timedelta(seconds=2)]
    now = saga.deadline  # type: ignore[assignment]
    (undo,) = saga.on_deadline(now, POLICY)  # third attempt timed out: give up
    assert saga.status == "compensating"
    # the timed-out step may have been applied: its undo comes first, then the profile's
    assert saga.compensations == ["notify_failure", "remove_profile", "cancel_registration"]
    names = [undo.name]
    while saga.status == "compensating":
        (undo,) = saga.on_reply(reply(undo), now, POLICY) or (undo,)
        if saga.status == "compensating":
            names.append(undo.name)
    assert names == ["NotifyRegistrationFailed", "RemoveProfile", "CancelRegistration"]
    assert saga.status == "compensated"
    events = [h["event"] for h in saga.history]
    assert events.count("timed_out") == 3 and events[-1] == "compensated"


def test_a_rejection_compensates_at_once_without_undoing_the_rejected_step() -> None:
    saga, (first,) = start()
    (undo,) = saga.on_reply(reply(first, "rejected", "reserved name"), T0, POLICY)
    assert (undo.context, undo.name) == ("auth", "CancelRegistration")
    assert saga.on_reply(reply(undo), T0, POLICY) == []
    assert saga.status == "compensated"


def test_a_rejection_later_undoes_the_earlier_steps_in_reverse() -> None:
    saga, (first,) = start()
    third = run_forward(saga, first, 2)  # profile, notifications done; assign_role pending
    (undo,) = saga.on_reply(reply(third, "rejected", "no"), T0, POLICY)
    assert saga.compensations == ["notify_failure", "remove_profile", "cancel_registration"]
    assert undo.name == "NotifyRegistrationFailed"


def test_a_failed_reply_is_retried_like_a_timeout() -> None:
    saga, (first,) = start()
    assert saga.on_reply(reply(first, "failed", "db down"), T0, POLICY) == []
    assert saga.awaiting == "retry" and saga.deadline == T0 + timedelta(seconds=1)
    # a late failure of the same attempt does not count twice
    assert saga.on_reply(reply(first, "failed", "db down"), T0, POLICY) == []
    assert saga.attempt == 1
    (again,) = saga.on_deadline(T0 + timedelta(seconds=1), POLICY)
    assert again.id == first.id and saga.attempt == 2


def test_a_success_that_arrives_while_a_retry_waits_is_taken() -> None:
    saga, (first,) = start()
    saga.on_deadline(T0 + timedelta(seconds=2), POLICY)  # timed out, retry scheduled
    (second,) = saga.on_reply(reply(first), T0 + timedelta(seconds=2.5), POLICY)
    assert second.name == "PrepareNotifications" and saga.attempt == 1


def test_a_compensation_that_keeps_failing_ends_failed_with_history() -> None:
    saga, (first,) = start()
    (_undo,) = saga.on_reply(reply(first, "rejected", "reserved name"), T0, POLICY)
    now = T0
    for _ in range(POLICY.compensation_attempts):
        now = saga.deadline  # type: ignore[assignment]
        saga.on_deadline(now, POLICY)  # timed out
        if saga.status == "compensating":
            now = saga.deadline  # type: ignore[assignment]
            saga.on_deadline(now, POLICY)  # retry sent
    assert saga.status == "failed"
    assert saga.history[-2]["event"] == "gave_up"
    assert saga.public_view()["status"] == "failed"


def test_the_json_form_round_trips_mid_saga() -> None:
    saga, (first,) = start()
    saga.on_reply(reply(first), T0, POLICY)
    saga.on_deadline(T0 + timedelta(seconds=5), POLICY)
    copy = Saga.from_json(saga.to_json())
    assert copy == saga


def test_the_public_view_shows_only_status_steps_and_times() -> None:
    saga, (first,) = start()
    saga.on_reply(reply(first, "rejected", "reserved name: Ada"), T0, POLICY)
    view = saga.public_view()
    text = repr(view)
    assert "ada@example.com" not in text and "Ada" not in text and "reserved" not in text
    assert set(view) == {"id", "status", "step", "started_at", "updated_at", "history"}
    assert all(set(entry) == {"step", "event", "at"} for entry in view["history"])
