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
        self.sent_at: dict[int, datetime] = {}  # seq -> its MessageSent's time
        self.deleted: set[int] = set()
        self.mentioned: dict[int, list[str]] = {}  # seq -> the people it mentions
        self.reactions: dict[tuple[int, str, str], int] = {}  # (seq, user, emoji) -> round
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

    def at(self, version: int) -> datetime:
        return self.start + timedelta(seconds=version)

    def sent_at_text(self, seq: int) -> str:
        """`sent_at` as the command side's JSON has it (pydantic: UTC as `Z`)."""
        return self.sent_at[seq].isoformat().replace("+00:00", "Z")

    def emit(self, name: str, data: dict[str, Any]) -> None:
        self.version += 1
        at = self.at(self.version)
        self.records.append(
            record("chat", self.cid, self.version, name, {"conversation_id": self.cid, **data}, at)
        )

    def send(
        self,
        sender: str,
        content: str,
        *,
        reply_to: int | None = None,
        mentions: list[str] | None = None,
    ) -> str:
        self.seq += 1
        self.senders[self.seq] = sender
        self.sent_at[self.seq] = self.at(self.version + 1)
        message_id = f"{self.cid}-m{self.seq}"
        recipients = [p for p in self.participants if p != sender]
        mentioned = [m for m in mentions or [] if m in recipients]
        self.mentioned[self.seq] = mentioned
        data: dict[str, Any] = {
            "message_id": message_id,
            "seq": self.seq,
            "sender_id": sender,
            "content": content,
            "client_message_id": None,
            "recipient_ids": recipients,
        }
        if reply_to is not None:
            data.update(reply_to=f"{self.cid}-m{reply_to}", reply_to_seq=reply_to)
        if mentioned:
            data["mentions"] = mentioned
        self.emit("MessageSent", data)
        return message_id

    def edit(self, seq: int, content: str) -> None:
        self.emit(
            "MessageEdited",
            {
                "message_id": f"{self.cid}-m{seq}",
                "seq": seq,
                "sender_id": self.senders[seq],
                "content": content,
                "participant_ids": self.participants,
                "last_seq": self.seq,
                "sent_at": self.sent_at_text(seq),
            },
        )

    def react(self, seq: int, user: str, emoji: str, *, remove: bool = False) -> None:
        key = (seq, user, emoji)
        round_ = self.reactions.get(key, 0)
        if remove:
            self.reactions[key] = round_ + 1
        data = {
            "message_id": f"{self.cid}-m{seq}",
            "seq": seq,
            "user_id": user,
            "emoji": emoji,
            "round": round_,
        }
        self.emit("ReactionRemoved" if remove else "ReactionAdded", data)

    def report(self, seq: int, reporter: str, reason: str) -> str:
        report_id = f"{self.cid}-r{seq}-{reporter}"
        self.emit(
            "MessageReported",
            {
                "report_id": report_id,
                "message_id": f"{self.cid}-m{seq}",
                "seq": seq,
                "sender_id": self.senders[seq],
                "reporter_id": reporter,
                "reason": reason,
            },
        )
        return report_id

    def resolve(self, report_id: str, seq: int, by: str, action: str) -> None:
        self.emit(
            "ReportResolved",
            {
                "report_id": report_id,
                "message_id": f"{self.cid}-m{seq}",
                "sender_id": self.senders[seq],
                "resolved_by": by,
                "action": action,
            },
        )

    def unread(self, user: str, *, mentions: bool = False) -> int:
        return sum(
            1
            for s, who in self.senders.items()
            if s > self.read[user]
            and who != user
            and s not in self.deleted
            and (not mentions or user in self.mentioned.get(s, []))
        )

    def mark_read(self, user: str) -> None:
        self.read[user] = self.seq
        self.emit(
            "MessagesRead",
            {
                "user_id": user,
                "up_to_seq": self.seq,
                "unread_after": self.unread(user),
                "mentions_after": self.unread(user, mentions=True),
            },
        )

    def delete(self, seq: int, by: str) -> None:
        unread_by = [p for p in self.participants if p != self.senders[seq] and self.read[p] < seq]
        mention_unread_by = [p for p in unread_by if p in self.mentioned.get(seq, [])]
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
                "mention_unread_by": mention_unread_by,
                "sent_at": self.sent_at_text(seq),
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
