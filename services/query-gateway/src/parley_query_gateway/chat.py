"""Queries of the chat read models (services/projector-chat). Every route needs a signed-in
caller and shows only the caller's own conversations: a conversation the caller is not (or no
longer) a participant of is a 404, never its data.

Lists are keyset-paginated with opaque cursors: the conversation list over
(last_activity_at, conversation_id) descending, a message page over seq descending, a search
over (sent_at, conversation_id, seq) descending.

The conversation list, the unread totals and message search come from the PostgreSQL
search model (search.py, services/projector-search): the caller's own rows of one index,
never a filter over everybody's memberships or messages (on FerretDB 1.24 every filter but
`_id` equality decodes the whole collection; docs/decisions.md, "Search and lists at scale
(issue 21)"). Search results are projector-chat's message documents, read by `_id`.

A message page is read by `_id` only: message documents are keyed "<conversation>:<seq>"
(projector-chat's `message_key`) and seqs are gap-free, so the conversation's `last_seq` (or
the cursor) names the page's documents. FerretDB 1.24 pushes only `{_id: <value>}` down to
SQLite (`{_id: {$in}}` scans the collection), so the page is `limit` concurrent `find_one`s:
its cost does not grow with the collection (docs/decisions.md, "Chat: message pages by _id").

Issue 20's features are read the same way (docs/decisions.md, "Chat features: read side"): a
route naming a message finds its seq in `message_ids` ("<conversation>:<message id>"), the
quoted parents of a page and the page of a parent's replies are `_id` probes too. A page is
cached per conversation, never per caller: what differs per caller (a reaction's `me`) is
worked out after the cache, from the people who reacted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from parley_authn import CurrentPrincipal, Principal
from parley_http.consistency import HEADER as CONSISTENCY_HEADER
from parley_http.problems import Problem
from parley_http.text import first_flaw
from parley_readmodel import aliases
from parley_readmodel.search import query_words
from pydantic import BaseModel, Field
from pymongo import DESCENDING

from parley_query_gateway.consistency import ReadModel, parse_token
from parley_query_gateway.reads import DB, QueryCache, answer
from parley_query_gateway.search import SearchModel

router = APIRouter(tags=["chat"])
Token = Annotated[str | None, Header(alias=CONSISTENCY_HEADER)]
PROJECTION = "projector-chat"
# what these routes read; the third part is the projector's `versions_in`
READ_MODEL = ReadModel(PROJECTION, ("chat",), {"chat": "conversations"})
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EXCERPT = 100  # characters of a quoted parent


class LastMessage(BaseModel):
    id: str
    seq: int
    sender_id: str | None
    content: str | None  # null once deleted, or once its sender was forgotten
    deleted: bool = False
    redacted: bool = False  # the sender was forgotten: the text is gone for everyone
    sent_at: datetime | None
    edited_at: datetime | None = None


class ConversationItem(BaseModel):
    id: str
    title: str | None
    kind: str | None
    participant_ids: list[str]
    last_message: LastMessage | None
    last_activity_at: datetime | None
    unread_count: int
    mention_count: int = Field(0, description="unread messages that mention the caller")


class ConversationPage(BaseModel):
    items: list[ConversationItem]
    next_cursor: str | None


class Quote(BaseModel):
    """The message a reply answers, as it is now (edited, deleted or redacted since)."""

    message_id: str
    seq: int
    sender_id: str | None
    excerpt: str | None = Field(description=f"its first {EXCERPT} characters; null once gone")
    deleted: bool = False
    redacted: bool = False


class Reaction(BaseModel):
    emoji: str
    count: int
    me: bool = Field(description="whether the caller reacted with it")


class Attachment(BaseModel):
    attachment_id: str = Field(description="download: GET /v1/attachments/{attachment_id}")
    filename: str | None = Field(description="null once its sender was forgotten")
    content_type: str | None
    size: int


class MessageItem(BaseModel):
    id: str
    conversation_id: str
    sender_id: str | None
    content: str | None  # null once deleted, or once its sender was forgotten
    deleted: bool
    redacted: bool = False  # the sender was forgotten: the text is gone for everyone
    sent_at: datetime | None
    seq: int
    edited_at: datetime | None = None
    reply_to: Quote | None = None
    reply_count: int = 0
    reactions: list[Reaction] = Field(default_factory=list)
    mentions: list[str] = Field(default_factory=list)
    attachments: list[Attachment] = Field(default_factory=list)


class MessagePage(BaseModel):
    items: list[MessageItem]
    next_cursor: str | None


class SearchResult(BaseModel):
    items: list[MessageItem]
    next_cursor: str | None = None  # absent: the last page


class UnreadCount(BaseModel):
    count: int
    mentions: int = Field(0, description="unread messages that mention the caller")


class TextVersion(BaseModel):
    content: str | None
    at: datetime | None


class MessageHistory(BaseModel):
    id: str
    conversation_id: str
    seq: int
    sender_id: str | None
    content: str | None = Field(description="the current text (null once deleted or redacted)")
    edited_at: datetime | None
    deleted: bool
    redacted: bool
    versions: list[TextVersion] = Field(description="the earlier texts, oldest first")


def _encode(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> Any:
    try:
        value = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
    except (binascii.Error, ValueError) as error:
        raise Problem(400, "Bad Request", "cursor is not one this API issued") from error
    # a forged cursor's strings go into store queries (the edge sees only base64)
    if first_flaw(value) is not None:
        raise Problem(400, "Bad Request", "cursor is not one this API issued")
    return value


def _ms(moment: datetime) -> int:
    """A stored time (BSON: UTC milliseconds, read back naive) as integer milliseconds."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return (aware - EPOCH) // timedelta(milliseconds=1)


def _at(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)  # exact, unlike fromtimestamp(ms / 1000)


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def conversation_cursor(doc: dict[str, Any]) -> str:
    return _encode({"t": _ms(doc["last_activity_at"]), "c": doc["conversation_id"]})


def after_conversation(cursor: str) -> tuple[datetime, str]:
    value = _decode(cursor)
    if not (
        isinstance(value, dict)
        and isinstance(value.get("t"), int)
        and isinstance(value.get("c"), str)
    ):
        raise Problem(400, "Bad Request", "cursor is not one this API issued")
    try:
        at = _at(value["t"])
    except OverflowError as error:  # a forged time beyond the year 9999
        raise Problem(400, "Bad Request", "cursor is not one this API issued") from error
    return at, value["c"]


def after_seq(cursor: str) -> int:
    value = _decode(cursor)
    if not (isinstance(value, dict) and isinstance(value.get("s"), int)):
        raise Problem(400, "Bad Request", "cursor is not one this API issued")
    return int(value["s"])


def listed(row: Any) -> ConversationItem:
    """A search-model row of the caller's list (inbox + conversation) as the list shows it."""
    last = json.loads(row["last_message"]) if row["last_message"] else None
    return ConversationItem(
        id=row["conversation_id"],
        title=row["title"],
        kind=row["kind"],
        participant_ids=list(row["participant_ids"] or []),
        last_message=None
        if last is None
        else LastMessage(
            id=last["message_id"],
            seq=last["seq"],
            sender_id=last.get("sender_id"),
            content=None if last.get("deleted") or last.get("redacted") else last.get("content"),
            deleted=bool(last.get("deleted")),
            redacted=bool(last.get("redacted")),
            sent_at=last.get("sent_at"),
            edited_at=last.get("edited_at"),
        ),
        last_activity_at=row["last_activity_at"],
        unread_count=max(0, int(row["unread_count"] or 0)),
        mention_count=max(0, int(row["mention_count"] or 0)),
    )


def _gone(doc: dict[str, Any]) -> tuple[bool, bool]:
    return bool(doc.get("deleted")), bool(doc.get("redacted"))


def to_quote(reply_to: Any, parent: dict[str, Any] | None) -> Quote | None:
    if not isinstance(reply_to, dict) or not isinstance(reply_to.get("seq"), int):
        return None
    if parent is None:  # not projected (yet): what the reply itself knows
        return Quote(
            message_id=str(reply_to.get("message_id")),
            seq=reply_to["seq"],
            sender_id=None,
            excerpt=None,
        )
    deleted, redacted = _gone(parent)
    content = parent.get("content")
    return Quote(
        message_id=str(parent.get("message_id") or reply_to.get("message_id")),
        seq=reply_to["seq"],
        sender_id=parent.get("sender_id"),
        excerpt=None if deleted or redacted or content is None else str(content)[:EXCERPT],
        deleted=deleted,
        redacted=redacted,
    )


def to_reactions(value: Any, caller: str | None) -> list[Reaction]:
    """Per emoji the set of people who reacted with it (projector-chat: `reactions`, keyed by
    the hex of the emoji), first reacted first; emojis nobody has any more are left out."""
    out: list[Reaction] = []
    for entry in (value or {}).values() if isinstance(value, dict) else ():
        users = entry.get("users") if isinstance(entry, dict) else None
        if not users or not isinstance(entry.get("emoji"), str):
            continue
        out.append(Reaction(emoji=entry["emoji"], count=len(users), me=caller in users))
    return out


def to_attachments(doc: dict[str, Any]) -> list[Attachment]:
    names = doc.get("attachment_names")
    out = []
    for i, item in enumerate(doc.get("attachments") or []):
        name = names[i] if isinstance(names, list) and i < len(names) else None
        out.append(
            Attachment(
                attachment_id=str(item.get("attachment_id")),
                filename=None if doc.get("redacted") else name,
                content_type=item.get("content_type"),
                size=int(item.get("size") or 0),
            )
        )
    return out


def to_message(
    doc: dict[str, Any],
    caller: str | None = None,
    parents: dict[int, dict[str, Any]] | None = None,
) -> MessageItem:
    """A message document as a reader sees it. `parents`: the quoted messages of a page by
    seq; `caller`: whose `me` the reactions show."""
    deleted, redacted = _gone(doc)
    reply_to = doc.get("reply_to")
    parent = (parents or {}).get(reply_to["seq"]) if isinstance(reply_to, dict) else None
    return MessageItem(
        # keyed "<conversation>:<seq>" the document names the message in `message_id`; a
        # generation built before that layout (until its rebuild) keys it by the message id
        id=doc.get("message_id") or doc["_id"],
        conversation_id=doc["conversation_id"],
        sender_id=doc.get("sender_id"),
        content=None if deleted or redacted else doc.get("content"),
        deleted=deleted,
        redacted=redacted,
        sent_at=_utc(doc.get("sent_at")),
        seq=doc["seq"],
        edited_at=_utc(doc.get("edited_at")),
        reply_to=to_quote(reply_to, parent),
        reply_count=max(0, int(doc.get("reply_count") or 0)),
        reactions=[] if deleted else to_reactions(doc.get("reactions"), caller),
        mentions=[str(u) for u in doc.get("mentions") or []],
        attachments=[] if deleted else to_attachments(doc),
    )


async def parents_of(
    messages: Any, conversation_id: str, docs: list[dict[str, Any]]
) -> dict[int, dict[str, Any]]:
    """The messages the documents reply to, by seq: those on the page already, the others
    fetched by `_id`, concurrently (FerretDB pushes only `_id` equality down)."""
    here = {int(d["seq"]): d for d in docs if isinstance(d.get("seq"), int)}
    wanted = sorted(
        {
            d["reply_to"]["seq"]
            for d in docs
            if isinstance(d.get("reply_to"), dict) and isinstance(d["reply_to"].get("seq"), int)
        }
        - set(here)
    )
    found = await asyncio.gather(
        *(messages.find_one({"_id": message_key(conversation_id, seq)}) for seq in wanted)
    )
    here.update({seq: doc for seq, doc in zip(wanted, found, strict=True) if doc is not None})
    return here


async def _collection(request: Request, logical: str) -> Any:
    db: DB = request.app.state.db
    return await aliases.collection(db, PROJECTION, logical)


async def _cached(request: Request, key: tuple[Any, ...], load: Any, fresh: bool) -> Any:
    cache: QueryCache = request.app.state.lists
    return await cache.get(key, load, fresh)


async def newest_seq(request: Request, caller: Principal, conversation_id: str) -> int | None:
    """The conversation's highest message seq, or None unless the caller is a participant.

    Always read fresh (never from the document cache): a participant removed a moment ago
    must not keep reading. Two reads by `_id`, concurrently: the caller's membership (the
    authorisation; its `last_message.seq`) and the conversation's `last_seq`, the exact one
    (every MessageSent raises it; a membership's last message lags for a member added after
    the last message and for events from before `MessageSent.recipient_ids`)."""
    memberships = await _collection(request, "memberships")
    conversations = await _collection(request, "conversations")
    member, conversation = await asyncio.gather(
        memberships.find_one(
            {"_id": f"{caller.user_id}:{conversation_id}"}, {"removed": 1, "last_message.seq": 1}
        ),
        conversations.find_one({"_id": conversation_id}, {"last_seq": 1}),
    )
    if member is None or member.get("removed"):
        return None
    last = member.get("last_message")
    seqs = [last.get("seq") if isinstance(last, dict) else None]
    seqs.append(conversation.get("last_seq") if conversation else None)
    return max((int(s) for s in seqs if isinstance(s, int)), default=0)


def message_key(conversation_id: str, seq: int) -> str:
    """projector-chat's message `_id` (parley_projector_chat.views.message_key; the gateway
    depends on no projector package)."""
    return f"{conversation_id}:{seq:012d}"


def one_per_seq(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest first, one document per seq. Two share a seq only in a generation written by both
    layouts (a projector of this layout deleting a message the old one wrote, before the
    rebuild): merged, and deleted if either says so."""
    merged: dict[int, dict[str, Any]] = {}
    for doc in docs:
        seq = int(doc["seq"])
        seen = merged.get(seq)
        if seen is None:
            merged[seq] = doc
        else:
            deleted = bool(seen.get("deleted") or doc.get("deleted"))
            merged[seq] = {**seen, **doc, "deleted": deleted}
    return [merged[seq] for seq in sorted(merged, reverse=True)]


async def message_page(
    messages: Any, conversation_id: str, start: int, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """The messages with seq <= `start`, newest first, at most `limit`; and whether older ones
    exist. Seqs are gap-free (a deleted message keeps its document), so they are the
    documents `start`, `start - 1`, ... down to seq 1 at the lowest: fetched by `_id`,
    concurrently (FerretDB: only `_id` equality is pushed down, `$in` scans).

    A hole below the newest document found (its MessageSent parked on the dead-letter topic,
    or a generation written before this layout: nothing found at all) falls back to the
    filter on (conversation_id, seq), which is correct in every case (MongoDB answers it
    from its index; FerretDB scans the collection). Holes above it are messages counted in
    `last_seq` but not stored yet: they are simply not on the page yet."""
    seqs = list(range(start, max(0, start - limit), -1))
    if not seqs:
        return [], False
    found = await asyncio.gather(
        *(messages.find_one({"_id": message_key(conversation_id, seq)}) for seq in seqs)
    )
    by_seq = {
        seq: doc
        for seq, doc in zip(seqs, found, strict=True)
        if doc is not None and doc.get("conversation_id") == conversation_id
    }
    if by_seq and all(seq in by_seq for seq in seqs if seq < max(by_seq)):
        docs = [by_seq[seq] for seq in seqs if seq in by_seq]
        return docs, int(docs[-1]["seq"]) > 1
    # at most two documents share a seq (see one_per_seq): 2 * limit + 1 hold limit + 1 seqs
    flt = {"conversation_id": conversation_id, "seq": {"$lte": start}}
    raw = await messages.find(flt).sort("seq", DESCENDING).limit(2 * limit + 1).to_list(None)
    docs = one_per_seq(raw)
    return docs[:limit], len(docs) > limit


@router.get(
    "/v1/conversations",
    response_model=ConversationPage,
    responses={304: {"description": "unchanged"}},
)
async def list_conversations(
    request: Request,
    response: Response,
    caller: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    token: Token = None,
) -> Any:
    fresh = await both_fresh(request, token, caller)
    after = after_conversation(cursor) if cursor else None

    async def load() -> ConversationPage:
        # one range of the caller's own rows in the search model, whatever the number of
        # memberships (docs/decisions.md, "Search and lists at scale")
        search: SearchModel = request.app.state.search
        rows = await search.conversations(caller.user_id, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return ConversationPage(
            items=[listed(r) for r in rows],
            next_cursor=conversation_cursor(
                {
                    "last_activity_at": rows[-1]["last_activity_at"],
                    "conversation_id": rows[-1]["conversation_id"],
                }
            )
            if more
            else None,
        )

    key = ("conversations", caller.user_id, cursor, limit)
    return answer(request, response, await _cached(request, key, load, fresh))


@router.get(
    "/v1/conversations/unread-count",
    response_model=UnreadCount,
    responses={304: {"description": "unchanged"}},
)
async def unread_count(
    request: Request, response: Response, caller: CurrentPrincipal, token: Token = None
) -> Any:
    fresh = await search_fresh(request, token, caller)

    async def load() -> UnreadCount:
        # the caller's own rows of the search model's inbox (its primary key), not a scan
        search: SearchModel = request.app.state.search
        count, mentions = await search.unread(caller.user_id)
        return UnreadCount(count=count, mentions=mentions)

    key = ("unread", caller.user_id)
    return answer(request, response, await _cached(request, key, load, fresh))


@router.get(
    "/v1/conversations/{conversation_id}/messages",
    response_model=MessagePage,
    responses={304: {"description": "unchanged"}, 404: {"description": "not a participant"}},
)
async def list_messages(
    conversation_id: Annotated[str, Path(max_length=200)],
    request: Request,
    response: Response,
    caller: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    token: Token = None,
) -> Any:
    fresh = await READ_MODEL.fresh_for(request, token, caller)
    below = after_seq(cursor) if cursor else None
    newest = await newest_seq(request, caller, conversation_id)
    if newest is None:
        raise Problem(404, "Not Found", f"no conversation {conversation_id}")
    start = newest if below is None else min(newest, below - 1)

    async def load() -> tuple[list[dict[str, Any]], bool, dict[int, dict[str, Any]]]:
        messages = await _collection(request, "messages")
        docs, more = await message_page(messages, conversation_id, start, limit)
        return docs, more, await parents_of(messages, conversation_id, docs)

    # per conversation, not per caller: the membership check above is never cached, and the
    # caller's `me` is worked out below; by the page's newest seq, so a new message is on the
    # first page at once
    key = ("messages", conversation_id, start, limit)
    docs, more, parents = await _cached(request, key, load, fresh)
    page = MessagePage(
        items=[to_message(d, caller.user_id, parents) for d in docs],
        next_cursor=_encode({"s": int(docs[-1]["seq"])}) if more and docs else None,
    )
    return answer(request, response, page)


async def seq_of(request: Request, conversation_id: str, message_id: str) -> int | None:
    """A message's seq: one `_id` probe of projector-chat's `message_ids`. Never a filter over
    the messages (a scan on FerretDB that anyone could start with a made-up id): a read model
    filled before `message_ids` existed is rebuilt (docs/decisions.md)."""
    ids = await _collection(request, "message_ids")
    found = await ids.find_one({"_id": f"{conversation_id}:{message_id}"}, {"seq": 1})
    return int(found["seq"]) if found is not None and isinstance(found.get("seq"), int) else None


async def message_of(
    request: Request, caller: Principal, conversation_id: str, message_id: str
) -> tuple[dict[str, Any], Any]:
    """The message document (and the messages collection) for a participant; 404 for anyone
    else and for a message that does not exist, alike."""
    missing = Problem(404, "Not Found", f"no message {message_id} in this conversation")
    newest, seq = await asyncio.gather(
        newest_seq(request, caller, conversation_id), seq_of(request, conversation_id, message_id)
    )
    if newest is None or seq is None:
        raise missing
    messages = await _collection(request, "messages")
    doc = await messages.find_one({"_id": message_key(conversation_id, seq)})
    if doc is None or doc.get("conversation_id") != conversation_id:
        raise missing
    return doc, messages


MessageId = Annotated[str, Path(max_length=200)]


@router.get(
    "/v1/conversations/{conversation_id}/messages/{message_id}/history",
    response_model=MessageHistory,
    responses={304: {"description": "unchanged"}, 404: {"description": "not a participant"}},
)
async def message_history(
    conversation_id: Annotated[str, Path(max_length=200)],
    message_id: MessageId,
    request: Request,
    response: Response,
    caller: CurrentPrincipal,
    token: Token = None,
) -> Any:
    """The message's current text and its earlier versions, oldest first, for the
    conversation's participants. A deleted message, or one whose sender was forgotten, has
    none: its texts are gone from the read model."""
    await READ_MODEL.fresh_for(request, token, caller)
    doc, _ = await message_of(request, caller, conversation_id, message_id)
    deleted, redacted = _gone(doc)
    texts = (
        [] if deleted or redacted else [t for t in doc.get("texts") or [] if isinstance(t, dict)]
    )
    history = MessageHistory(
        id=str(doc.get("message_id") or message_id),
        conversation_id=conversation_id,
        seq=int(doc["seq"]),
        sender_id=doc.get("sender_id"),
        content=None if deleted or redacted else doc.get("content"),
        edited_at=_utc(doc.get("edited_at")),
        deleted=deleted,
        redacted=redacted,
        versions=[TextVersion(content=t.get("content"), at=_utc(t.get("at"))) for t in texts[:-1]],
    )
    return answer(request, response, history)


@router.get(
    "/v1/conversations/{conversation_id}/messages/{message_id}/replies",
    response_model=MessagePage,
    responses={304: {"description": "unchanged"}, 404: {"description": "not a participant"}},
)
async def list_replies(
    conversation_id: Annotated[str, Path(max_length=200)],
    message_id: MessageId,
    request: Request,
    response: Response,
    caller: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    token: Token = None,
) -> Any:
    """The replies to a message, oldest first, in keyset pages (`next_cursor`). The parent
    lists its replies' seqs, so a page is its documents by `_id`."""
    await READ_MODEL.fresh_for(request, token, caller)
    after = after_seq(cursor) if cursor else 0
    parent, messages = await message_of(request, caller, conversation_id, message_id)
    seqs = sorted({int(s) for s in parent.get("replies") or [] if isinstance(s, int)})
    todo = [s for s in seqs if s > after]
    wanted = todo[:limit]
    found = await asyncio.gather(
        *(messages.find_one({"_id": message_key(conversation_id, seq)}) for seq in wanted)
    )
    docs = [d for d in found if d is not None]
    parents = {int(parent["seq"]): parent}
    page = MessagePage(
        items=[to_message(d, caller.user_id, parents) for d in docs],
        next_cursor=_encode({"s": wanted[-1]}) if len(todo) > limit else None,
    )
    return answer(request, response, page)


@router.get(
    "/v1/messages/search",
    response_model=SearchResult,
    responses={304: {"description": "unchanged"}},
)
async def search_messages(
    request: Request,
    response: Response,
    caller: CurrentPrincipal,
    q: Annotated[str, Query(min_length=1, max_length=200)],
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    token: Token = None,
) -> Any:
    """Messages with every word of `q` (as word starts, any order, accent- and
    case-insensitive), newest first, in keyset pages, among those the caller may find: in the
    conversations they are in now, sent while they were a participant (not before they
    joined; after a removal and a new join, not what was sent while they were out). Deleted messages
    and the texts of forgotten people are never found; an edited message by its current text.

    The search model (PostgreSQL, projector-search) finds the messages; their documents are
    projector-chat's, read by `_id`."""
    fresh = await both_fresh(request, token, caller)
    wanted = query_words(q)
    if not wanted:
        raise Problem(400, "Bad Request", "q has no letters or digits to search for")
    after = after_found(cursor) if cursor else None

    async def load() -> SearchResult:
        search: SearchModel = request.app.state.search
        rows = await search.messages(caller.user_id, wanted, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        messages = await _collection(request, "messages")
        docs = await asyncio.gather(
            *(
                messages.find_one(
                    {"_id": message_key(r["conversation_id"], r["seq"])}, {"texts": 0}
                )
                for r in rows
            )
        )
        shown = [d for d in docs if d is not None and not any(_gone(d))]
        return SearchResult(
            # results are the caller's own (cached per caller): `me` can be worked out here
            items=[to_message(d, caller.user_id) for d in shown],
            next_cursor=found_cursor(rows[-1]) if more else None,
        )

    key = ("search", caller.user_id, tuple(wanted), limit, cursor)
    return answer(request, response, await _cached(request, key, load, fresh))


def found_cursor(row: Any) -> str:
    """A search page's cursor: the last message's send time (microseconds), conversation
    and seq."""
    return _encode({"u": _us(row["sent_at"]), "c": row["conversation_id"], "s": row["seq"]})


def after_found(cursor: str) -> tuple[datetime, str, int]:
    value = _decode(cursor)
    if not (
        isinstance(value, dict)
        and isinstance(value.get("u"), int)
        and isinstance(value.get("c"), str)
        and isinstance(value.get("s"), int)
        and 0 <= value["s"] < 2**62
    ):
        raise Problem(400, "Bad Request", "cursor is not one this API issued")
    try:
        at = EPOCH + timedelta(microseconds=value["u"])
    except OverflowError as error:
        raise Problem(400, "Bad Request", "cursor is not one this API issued") from error
    return at, value["c"], int(value["s"])


def _us(moment: datetime) -> int:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return (aware - EPOCH) // timedelta(microseconds=1)


async def search_fresh(request: Request, token: str | None, caller: Principal) -> bool:
    """`fresh_for` of the search model: a chat token waits until projector-search applied
    it (its `applied` versions)."""
    search: SearchModel = request.app.state.search
    settings = request.app.state.settings
    return await search.caught_up(
        parse_token(token, settings.consistency_secret, caller.user_id),
        READ_MODEL.contexts,
        settings.consistency_wait_s,
    )


async def both_fresh(request: Request, token: str | None, caller: Principal) -> bool:
    """A route reading both models (the search model's order, projector-chat's documents)
    waits for both."""
    fresh = await READ_MODEL.fresh_for(request, token, caller)
    return await search_fresh(request, token, caller) or fresh
