"""Chat events as the command side emits them (stream order, versions, seqs, and the fields the
read side asked for: recipient_ids, participant_ids, last_seq, unread_by), for tests and
benchmarks of the chat read side. `Conversation.records` are ready for
`parley_testing.projections.produce`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from parley_testing.projections import Record, record

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Conversation:
    """Builds one conversation's events in stream order (versions and seqs like the command
    side's, with the contract additions the read side asks for)."""

    def __init__(
        self,
        cid: str,
        participants: list[str],
        kind: str = "direct",
        start: datetime = T0,
    ) -> None:
        self.cid = cid
        self.start = start
        self.participants = list(participants)
        self.version = 0
        self.seq = 0
        self.read: dict[str, int] = {p: 0 for p in participants}
        self.senders: dict[int, str] = {}
        self.deleted: set[int] = set()
        self.records: list[Record] = []
        title = None if kind == "direct" else f"title {cid}"
        self.emit(
            "ConversationCreated",
            {
                "kind": kind,
                "title": title,
                "participant_ids": participants,
                "created_by": participants[0],
            },
        )

    def emit(self, name: str, data: dict[str, Any]) -> None:
        self.version += 1
        at = self.start + timedelta(seconds=self.version)
        self.records.append(
            record("chat", self.cid, self.version, name, {"conversation_id": self.cid, **data}, at)
        )

    def send(self, sender: str, content: str) -> str:
        self.seq += 1
        self.senders[self.seq] = sender
        message_id = f"{self.cid}-m{self.seq}"
        recipients = [p for p in self.participants if p != sender]
        self.emit(
            "MessageSent",
            {
                "message_id": message_id,
                "seq": self.seq,
                "sender_id": sender,
                "content": content,
                "client_message_id": None,
                "recipient_ids": recipients,
            },
        )
        return message_id

    def unread(self, user: str) -> int:
        return sum(
            1
            for s, who in self.senders.items()
            if s > self.read[user] and who != user and s not in self.deleted
        )

    def mark_read(self, user: str) -> None:
        self.read[user] = self.seq
        self.emit(
            "MessagesRead",
            {"user_id": user, "up_to_seq": self.seq, "unread_after": self.unread(user)},
        )

    def delete(self, seq: int, by: str) -> None:
        unread_by = [p for p in self.participants if p != self.senders[seq] and self.read[p] < seq]
        self.deleted.add(seq)
        self.emit(
            "MessageDeleted",
            {
                "message_id": f"{self.cid}-m{seq}",
                "seq": seq,
                "deleted_by": by,
                "sender_id": self.senders[seq],
                "participant_ids": self.participants,
                "last_seq": self.seq,
                "unread_by": unread_by,
            },
        )

    def remove(self, user: str, by: str) -> None:
        self.participants.remove(user)
        self.emit(
            "ParticipantRemoved",
            {"user_id": user, "removed_by": by, "participant_ids": self.participants},
        )


def interleaved(*conversations: Conversation) -> list[Record]:
    """Every conversation's records, round robin (per-conversation order kept)."""
    out: list[Record] = []
    for i in range(max(len(c.records) for c in conversations)):
        out += [c.records[i] for c in conversations if i < len(c.records)]
    return out
