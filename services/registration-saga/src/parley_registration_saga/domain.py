"""The registration saga as a pure state machine: what to send next, given a reply, a deadline
or the start. No I/O: the orchestrator (orchestrator.py) loads a saga, calls one of these
methods and saves the saga with the commands it returned in one transaction.

Forward steps, each a command to a participant with a reply:
  create_profile (users) -> prepare_notifications (notifications: default preferences and the
  verification-code mail) -> assign_role (users) -> activate_account (auth).
Every attempt of a step has a deadline. A step that fails transiently or times out is retried
with exponential backoff up to `max_attempts`; a rejection (a business rule said no) is final.
Then the saga compensates in reverse: notify the registrant (if the code mail may have gone
out), remove the profile (if it may exist), and cancel the registration in auth (always: the
account is closed and its address free again). A timed-out step is compensated too: the
participant may have applied it and only its reply was lost; compensations are idempotent.
Compensations are retried longer (`compensation_attempts`); one that still cannot be done ends
the saga `failed`, with its history, for an operator to see.

The command id of an action is `<saga id>/<action>`: the same on every retry, so participants
apply an action once however often it is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from parley_messaging.saga import SagaCommand, SagaReply

Status = Literal["running", "compensating", "completed", "compensated", "failed"]
Awaiting = Literal["reply", "retry", "nothing"]
ACTIVE: tuple[Status, ...] = ("running", "compensating")
STATUSES: tuple[Status, ...] = ("running", "compensating", "completed", "compensated", "failed")


@dataclass(frozen=True)
class Action:
    name: str
    context: str
    command: str
    undone_by: str | None = None  # the compensation action that undoes it


FORWARD: tuple[Action, ...] = (
    Action("create_profile", "users", "CreateProfile", undone_by="remove_profile"),
    Action("prepare_notifications", "notifications", "PrepareNotifications", "notify_failure"),
    Action("assign_role", "users", "AssignDefaultRole"),  # moot once the profile is removed
    Action("activate_account", "auth", "ActivateAccount"),  # undone by cancel_registration
)
COMPENSATIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("notify_failure", "notifications", "NotifyRegistrationFailed"),
        Action("remove_profile", "users", "RemoveProfile"),
        Action("cancel_registration", "auth", "CancelRegistration"),
    )
}
# the trigger (the account auth registered) is undone last, whatever else happened
UNDO_TRIGGER = "cancel_registration"


@dataclass(frozen=True)
class Policy:
    step_timeout: timedelta = timedelta(seconds=4)
    max_attempts: int = 4
    backoff_base: timedelta = timedelta(seconds=0.5)
    backoff_max: timedelta = timedelta(seconds=4)
    compensation_attempts: int = 8

    def backoff(self, failed_attempts: int) -> timedelta:
        grown: timedelta = self.backoff_base * (2 ** max(0, failed_attempts - 1))
        return min(grown, self.backoff_max)


@dataclass
class Saga:
    id: str  # the user id: one registration per account
    data: dict[str, str]  # user_id, email, name: what every command carries
    reply_to: str
    created_at: datetime
    status: Status = "running"
    step: int = 0  # index into FORWARD while running
    compensations: list[str] = field(default_factory=list)  # still to do, current first
    attempt: int = 0
    awaiting: Awaiting = "nothing"
    deadline: datetime | None = None
    action_started_at: datetime | None = None
    updated_at: datetime | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    traceparent: str | None = None

    # -- inputs --------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        user_id: str,
        email: str,
        name: str,
        reply_to: str,
        now: datetime,
        policy: Policy,
        traceparent: str | None = None,
    ) -> tuple[Saga, list[SagaCommand]]:
        saga = cls(
            id=user_id,
            data={"user_id": user_id, "email": email, "name": name},
            reply_to=reply_to,
            created_at=now,
            traceparent=traceparent,
        )
        saga._note("registered", "started", now)
        return saga, saga._send(now, policy, first=True)

    def on_reply(self, reply: SagaReply, now: datetime, policy: Policy) -> list[SagaCommand]:
        """A participant answered. Replies to anything but the current action (late replies of
        an action already settled, duplicates) change nothing."""
        if self.status not in ACTIVE or reply.command_id != self.command_id:
            return []
        action = self.action
        if reply.outcome == "succeeded":
            self._note(action.name, "succeeded", now, latency=self._elapsed(now))
            return self._advance(now, policy)
        if reply.outcome == "rejected":
            self._note(action.name, "rejected", now, reason=reply.reason)
            if self.status == "running":
                return self._compensate(now, policy, including_current=False)
            return self._fail(now, f"{action.name} rejected: {reply.reason}")
        if self.awaiting != "reply":
            return []  # a late failure of an earlier attempt: the retry is already scheduled
        self._note(action.name, "failed", now, reason=reply.reason)
        return self._retry_or_give_up(now, policy)

    def on_deadline(self, now: datetime, policy: Policy) -> list[SagaCommand]:
        """The deadline passed: send the retry that was waiting, or the reply is overdue."""
        if self.status not in ACTIVE or self.deadline is None or now < self.deadline:
            return []
        if self.awaiting == "retry":
            return self._send(now, policy)
        self._note(self.action.name, "timed_out", now)
        return self._retry_or_give_up(now, policy)

    # -- what the saga looks like -----------------------------------------------------------

    @property
    def action(self) -> Action:
        if self.status == "compensating":
            return COMPENSATIONS[self.compensations[0]]
        return FORWARD[min(self.step, len(FORWARD) - 1)]

    @property
    def command_id(self) -> str:
        return f"{self.id}/{self.action.name}"

    @property
    def finished(self) -> bool:
        return self.status not in ACTIVE

    def new_history_since(self, count: int) -> list[dict[str, Any]]:
        return self.history[count:]

    # -- transitions ------------------------------------------------------------------------

    def _advance(self, now: datetime, policy: Policy) -> list[SagaCommand]:
        if self.status == "running":
            self.step += 1
            if self.step == len(FORWARD):
                return self._finish("completed", now)
        else:
            self.compensations.pop(0)
            if not self.compensations:
                return self._finish("compensated", now)
        self.attempt = 0
        return self._send(now, policy, first=True)

    def _retry_or_give_up(self, now: datetime, policy: Policy) -> list[SagaCommand]:
        limit = policy.max_attempts if self.status == "running" else policy.compensation_attempts
        if self.attempt < limit:
            self.awaiting = "retry"
            self.deadline = now + policy.backoff(self.attempt)
            self.updated_at = now
            return []
        if self.status == "running":
            return self._compensate(now, policy, including_current=True)
        return self._fail(now, f"{self.action.name} still failing after {self.attempt} attempts")

    def _compensate(
        self, now: datetime, policy: Policy, *, including_current: bool
    ) -> list[SagaCommand]:
        """Undo in reverse order every step that ran (the current one too when it may have been
        applied), then the registration itself."""
        last = self.step if including_current else self.step - 1
        undo = [FORWARD[i].undone_by for i in range(last, -1, -1)]
        self.compensations = [name for name in undo if name] + [UNDO_TRIGGER]
        self.status = "compensating"
        self.attempt = 0
        self._note(self.action.name, "compensation_started", now)
        return self._send(now, policy, first=True)

    def _send(self, now: datetime, policy: Policy, first: bool = False) -> list[SagaCommand]:
        self.attempt += 1
        self.awaiting = "reply"
        self.deadline = now + policy.step_timeout
        self.updated_at = now
        if first:
            self.action_started_at = now
        self._note(self.action.name, "sent", now, attempt=self.attempt)
        action = self.action
        return [
            SagaCommand(
                id=self.command_id,
                context=action.context,
                name=action.command,
                subject=self.id,
                saga_id=self.id,
                reply_to=self.reply_to,
                step=action.name,
                data=dict(self.data),
                traceparent=self.traceparent,
            )
        ]

    def _finish(self, status: Status, now: datetime) -> list[SagaCommand]:
        self.status = status
        self.awaiting = "nothing"
        self.deadline = None
        self.updated_at = now
        self._note("registration", status, now)
        return []

    def _fail(self, now: datetime, reason: str) -> list[SagaCommand]:
        self._note(self.action.name, "gave_up", now, reason=reason)
        return self._finish("failed", now)

    def _elapsed(self, now: datetime) -> float:
        started = self.action_started_at or now
        return round((now - started).total_seconds() * 1000, 3)

    def _note(self, step: str, event: str, now: datetime, **details: Any) -> None:
        self.history.append({"step": step, "event": event, "at": now.isoformat(), **details})
        self.updated_at = now

    # -- persistence form (a JSON document; the store indexes status and deadline) ----------

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "data": self.data,
            "reply_to": self.reply_to,
            "created_at": self.created_at.isoformat(),
            "status": self.status,
            "step": self.step,
            "compensations": self.compensations,
            "attempt": self.attempt,
            "awaiting": self.awaiting,
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "action_started_at": _iso(self.action_started_at),
            "updated_at": _iso(self.updated_at),
            "history": self.history,
            "traceparent": self.traceparent,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Saga:
        return cls(
            id=doc["id"],
            data=dict(doc["data"]),
            reply_to=doc["reply_to"],
            created_at=datetime.fromisoformat(doc["created_at"]),
            status=doc["status"],
            step=int(doc["step"]),
            compensations=list(doc["compensations"]),
            attempt=int(doc["attempt"]),
            awaiting=doc["awaiting"],
            deadline=_parse(doc.get("deadline")),
            action_started_at=_parse(doc.get("action_started_at")),
            updated_at=_parse(doc.get("updated_at")),
            history=list(doc["history"]),
            traceparent=doc.get("traceparent"),
        )

    def public_view(self) -> dict[str, Any]:
        """What `GET /v1/registrations/{id}` shows: status, step names and times, nothing else
        (no address, no name, no failure reasons)."""
        return {
            "id": self.id,
            "status": self.status,
            "step": self.action.name if not self.finished else None,
            "started_at": self.created_at.isoformat(),
            "updated_at": _iso(self.updated_at),
            "history": [
                {"step": h["step"], "event": h["event"], "at": h["at"]} for h in self.history
            ],
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
