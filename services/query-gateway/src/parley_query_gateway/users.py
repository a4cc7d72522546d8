"""Queries of the users read model. Every read needs a signed-in caller; the email address
is personal data and is shown only to its owner and to admins (and only admins search by
it or look users up by it).

Lists are keyset-paginated (pages.py): users in (name_key, _id) order, contacts in _id order.
The list of users and its search are served by the PostgreSQL search model (search.py): an
equality match on normalised prefix tokens (parley_readmodel.search) in a btree ordered by
name, so a page costs the same at any number of users.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from parley_authn import CurrentPrincipal, Principal, require_role, require_self_or_admin
from parley_http.consistency import HEADER as CONSISTENCY_HEADER
from parley_http.problems import Problem
from parley_readmodel import aliases
from parley_readmodel.search import query_token
from pydantic import BaseModel

from parley_query_gateway.consistency import ReadModel, parse_token
from parley_query_gateway.pages import decode_cursor, encode_cursor
from parley_query_gateway.reads import answer, get_document
from parley_query_gateway.search import SearchModel

router = APIRouter(prefix="/v1/users", tags=["users"])
Token = Annotated[str | None, Header(alias=CONSISTENCY_HEADER)]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=1000)]
PROJECTION = "projector-users"
# what these routes read; the third part is the projector's `versions_in`
READ_MODEL = ReadModel(PROJECTION, ("users",), {"users": "users"})
Role = Literal["user", "admin"]
Status = Literal["active", "deactivated"]
USER_ORDER = ("name_key", "_id")


class UserView(BaseModel):
    id: str
    name: str
    email: str | None = None  # only for the user themselves and admins
    bio: str | None = None
    avatar_url: str | None = None
    role: Role = "user"
    status: Status = "active"
    status_reason: str | None = None  # only for admins
    created_at: datetime
    updated_at: datetime


class UserPage(BaseModel):
    items: list[UserView]
    next_cursor: str | None = None  # absent: this is the last page


class ContactView(BaseModel):
    contact_id: str
    name: str | None = None  # None: the contact's profile is not in the read model (yet)
    added_at: datetime


class ContactPage(BaseModel):
    items: list[ContactView]
    next_cursor: str | None = None


class BlockView(BaseModel):
    user_id: str  # the blocked person
    blocked_at: datetime


class BlockPage(BaseModel):
    items: list[BlockView]
    next_cursor: str | None = None


def to_view(doc: dict[str, Any], caller: Principal) -> UserView:
    fields = {k: v for k, v in doc.items() if k in UserView.model_fields and v is not None}
    if not (caller.is_admin or caller.user_id == doc["_id"]):
        fields.pop("email", None)
    if not caller.is_admin:
        fields.pop("status_reason", None)
    return UserView(id=doc["_id"], **fields)


def sees_pending(caller: Principal, user_id: str) -> bool:
    return caller.is_admin or caller.user_id == user_id


async def pending(request: Request, user_ids: list[str]) -> set[str]:
    """Those of `user_ids` whose registration is not verified yet (projector-users'
    `registrations`, from auth.events). Their profiles (the registration saga makes one at
    once) are shown to nobody else: a fresh registration's id must answer like the decoy id
    a taken address gets, or registering someone's address and asking for the profile tells
    whether it has an account."""
    if not user_ids:
        return set()
    registrations = await aliases.collection(request.app.state.db, PROJECTION, "registrations")
    found = registrations.find({"_id": {"$in": user_ids}, "pending": True}, {"_id": 1})
    return {doc["_id"] for doc in await found.to_list(None)}


async def user_view(
    user_id: str, request: Request, response: Response, caller: Principal, token: str | None
) -> Any:
    fresh = await READ_MODEL.fresh_for(request, token, caller)
    doc = await get_document(request, PROJECTION, "users", user_id, fresh)
    hidden = doc is not None and not sees_pending(caller, user_id)
    if doc is None or (hidden and await pending(request, [user_id])):
        raise Problem(404, "Not Found", f"no user {user_id}")
    return answer(request, response, to_view(doc, caller))


UNCHANGED: dict[int | str, dict[str, Any]] = {304: {"description": "unchanged"}}


@router.get("", response_model=UserPage, responses=UNCHANGED)
async def list_users(
    request: Request,
    response: Response,
    caller: CurrentPrincipal,
    q: Annotated[str | None, Query(max_length=200)] = None,
    role: Role | None = None,
    status: Status | None = None,
    limit: Limit = 20,
    cursor: Cursor = None,
    token: Token = None,
) -> Any:
    """Users by name (accent- and case-insensitive, ascending), optionally those whose name
    (or, for admins, email local part) has a word or a start matching `q`.

    Served by the search model (PostgreSQL, projector-search): one range of the token index
    per page, whatever the number of users (docs/decisions.md, "Search and lists at scale")."""
    search = await search_fresh(request, token, caller)
    after = None
    if cursor is not None:
        key, last_id = decode_cursor(cursor, len(USER_ORDER))
        after = (str(key), str(last_id))
    term = query_token(q or "")
    ask = partial(
        search.users,
        term,
        role=role,
        status=status,
        after=after,
        caller=caller.user_id,
        admin=caller.is_admin,
        limit=limit + 1,
    )
    if term and caller.is_admin:  # by name or by address: two index ranges, merged
        by_name, by_email = await asyncio.gather(ask(by_email=False), ask(by_email=True))
        merged = {r["id"]: dict(r) for r in [*by_name, *by_email]}
        found = sorted(merged.values(), key=lambda r: (r["name_key"] or "", r["id"]))
    else:
        found = [dict(r) for r in await ask(by_email=False)]
    found = found[: limit + 1]
    page = UserPage(items=[to_view(row_to_doc(r), caller) for r in found[:limit]])
    if len(found) > limit:
        last = found[limit - 1]
        page.next_cursor = encode_cursor(str(last.get("name_key") or ""), last["id"])
    return answer(request, response, page)


async def search_fresh(request: Request, token: str | None, caller: Principal) -> SearchModel:
    """The search model, once it applied the caller's users token (if any)."""
    search: SearchModel = request.app.state.search
    settings = request.app.state.settings
    await search.caught_up(
        parse_token(token, settings.consistency_secret, caller.user_id),
        READ_MODEL.contexts,
        settings.consistency_wait_s,
    )
    return search


def row_to_doc(row: dict[str, Any]) -> dict[str, Any]:
    """A search-model row in the shape of a users document (to_view's input)."""
    return {"_id": row["id"], **{k: v for k, v in row.items() if k != "id"}}


@router.get("/me", response_model=UserView, responses=UNCHANGED)
async def get_me(
    request: Request, response: Response, caller: CurrentPrincipal, token: Token = None
) -> Any:
    return await user_view(caller.user_id, request, response, caller, token)


@router.get("/me/blocks", response_model=BlockPage, responses=UNCHANGED)
async def list_my_blocks(
    request: Request,
    response: Response,
    caller: CurrentPrincipal,
    limit: Limit = 50,
    cursor: Cursor = None,
    token: Token = None,
) -> Any:
    """The people the caller blocks, in a stable order (by id). Only one's own list: there
    is no route to anyone else's (admins neither; docs/decisions.md)."""
    await READ_MODEL.fresh_for(request, token, caller)
    flt: dict[str, Any] = {"user_id": caller.user_id, "removed": False}
    if cursor is not None:
        (last_id,) = decode_cursor(cursor, 1)
        flt["_id"] = {"$gt": last_id}
    blocks = await aliases.collection(request.app.state.db, PROJECTION, "blocks")
    found = await blocks.find(flt).sort("_id", 1).limit(limit + 1).to_list(None)
    shown = found[:limit]
    page = BlockPage(
        items=[BlockView(user_id=d["blocked_user_id"], blocked_at=d["blocked_at"]) for d in shown]
    )
    if len(found) > limit:
        page.next_cursor = encode_cursor(shown[-1]["_id"])
    return answer(request, response, page)


@router.get("/by-email/{email}", response_model=UserView, responses=UNCHANGED)
async def get_user_by_email(
    email: Annotated[str, Path(max_length=320, pattern=r"^[^@\s/]{1,64}@[^@\s/]{1,255}$")],
    request: Request,
    response: Response,
    caller: CurrentPrincipal,
    token: Token = None,
) -> Any:
    """Admins only. Case-insensitive. Should two profiles share an address (auth keeps
    accounts' addresses unique, profiles an admin created need not be), the oldest."""
    require_role(caller, "admin")
    search: SearchModel = await search_fresh(request, token, caller)
    # the search model's index on the address (FerretDB would decode every profile)
    found = await search.user_by_email(email.strip().casefold())
    if found is None:
        raise Problem(404, "Not Found", "no user with that address")
    return answer(request, response, to_view(row_to_doc(dict(found)), caller))


@router.get("/{user_id}", response_model=UserView, responses=UNCHANGED)
async def get_user(
    user_id: uuid.UUID,
    request: Request,
    response: Response,
    caller: CurrentPrincipal,
    token: Token = None,
) -> Any:
    return await user_view(str(user_id), request, response, caller, token)


@router.get("/{user_id}/contacts", response_model=ContactPage, responses=UNCHANGED)
async def list_contacts(
    user_id: uuid.UUID,
    request: Request,
    response: Response,
    caller: CurrentPrincipal,
    limit: Limit = 50,
    cursor: Cursor = None,
    token: Token = None,
) -> Any:
    """The user's own contacts (the user or an admin), in a stable order (by contact id)."""
    owner = str(user_id)
    require_self_or_admin(caller, owner)
    fresh = await READ_MODEL.fresh_for(request, token, caller)
    if await get_document(request, PROJECTION, "users", owner, fresh) is None:
        raise Problem(404, "Not Found", f"no user {owner}")
    flt: dict[str, Any] = {"user_id": owner, "removed": False}
    if cursor is not None:
        (last_id,) = decode_cursor(cursor, 1)
        flt["_id"] = {"$gt": last_id}
    contacts = await aliases.collection(request.app.state.db, PROJECTION, "contacts")
    found = await contacts.find(flt).sort("_id", 1).limit(limit + 1).to_list(None)
    shown = found[:limit]
    # names by _id (FerretDB scans a collection for an $in; single reads are indexed + cached)
    profiles = await asyncio.gather(
        *(get_document(request, PROJECTION, "users", d["contact_id"], False) for d in shown)
    )
    # any id can be added as a contact; a registration not verified yet shows no name, like
    # an id that is nobody's (the profile route's rule: user_view)
    unverified = (
        set() if caller.is_admin else await pending(request, [d["contact_id"] for d in shown])
    )
    page = ContactPage(
        items=[
            ContactView(
                contact_id=d["contact_id"],
                name=profile.get("name") if profile and d["contact_id"] not in unverified else None,
                added_at=d["added_at"],
            )
            for d, profile in zip(shown, profiles, strict=True)
        ]
    )
    if len(found) > limit:
        page.next_cursor = encode_cursor(shown[-1]["_id"])
    return answer(request, response, page)


stats_router = APIRouter(prefix="/v1/stats", tags=["stats"])


class RoleStats(BaseModel):
    roles: dict[str, int]
    total: int


@stats_router.get("/roles", response_model=RoleStats, responses=UNCHANGED)
async def role_stats(
    request: Request,
    response: Response,
    caller: CurrentPrincipal,
    status: Status | None = None,
    token: Token = None,
) -> Any:
    """Admins only: users per role (optionally of one status). Computed when asked, a count
    over the search model's users table, never kept in a counter that many streams would
    update."""
    require_role(caller, "admin")
    search: SearchModel = await search_fresh(request, token, caller)
    roles = {"user": 0, "admin": 0}
    for role, count in (await search.roles(status)).items():
        roles[role] = roles.get(role, 0) + count
    return answer(request, response, RoleStats(roles=roles, total=sum(roles.values())))
