"""Read-your-writes: a GET that presents the `X-Consistency-Token` of a command sees that
command's effect, or a 503 that says so, never stale data presented as fresh.

The wait is per projection, not per document: the runtime records, per source stream, the
highest version each projection applied (`_progress`), so the check also holds for events
that changed nothing in the document being read.

Only the caller's own tokens count (parley_http.consistency, issue 19): a token signed for
someone else, forged, unsigned (v1) or signed with another secret is ignored, so the read
answers exactly as without a token, with no wait and nothing learnt about that stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from parley_authn import Principal
from parley_http.consistency import ConsistencyToken, InvalidToken
from parley_http.problems import Problem, try_again_soon
from parley_readmodel.progress import stream_key, wait_for_version
from pymongo.asynchronous.database import AsyncDatabase


def parse_token(raw: str | None, secret: str, caller: str) -> ConsistencyToken | None:
    """The caller's own token, or None (no token, or one to ignore). Text that is not a
    token in any shape is still a 400: it says nothing about anyone's stream."""
    if raw is None:
        return None
    try:
        return ConsistencyToken.verify(raw, secret, caller)
    except InvalidToken as error:
        raise Problem(400, "Bad Request", "X-Consistency-Token is not a token we issued") from error


async def caught_up(
    db: AsyncDatabase[dict[str, Any]],
    projection: str,
    contexts: tuple[str, ...],
    token: ConsistencyToken | None,
    wait_s: float,
    versions_in: Mapping[str, str] | None = None,
) -> bool:
    """Wait until `projection` has applied the token's write. False: no token, or a token
    of a context this projection does not read (nothing to wait for). True: the write is in
    (read fresh, not from a cache). Past `wait_s`: 503 + Retry-After. `versions_in`: the
    projection's `Projection.versions_in` (context -> collection whose document of the
    stream records its versions)."""
    if token is None or token.context not in contexts:
        return False
    stream = stream_key(token.context, token.stream_id)
    home = (versions_in or {}).get(token.context)
    in_document = None if home is None else (home, token.stream_id)
    if await wait_for_version(db, projection, stream, token.version, wait_s, in_document):
        return True
    raise try_again_soon(
        f"the read model has not caught up with version {token.version} yet; retry"
    )


@dataclass(frozen=True)
class ReadModel:
    """What a group of routes reads: a projection, the contexts whose tokens it can answer,
    and the projection's `versions_in`."""

    projection: str
    contexts: tuple[str, ...]
    versions_in: Mapping[str, str] = field(default_factory=dict)

    async def fresh_for(self, request: Request, token: str | None, caller: Principal) -> bool:
        """`caught_up` for the request's `X-Consistency-Token` if `caller` holds it (True:
        read fresh, not from a cache)."""
        settings = request.app.state.settings
        return await caught_up(
            request.app.state.db,
            self.projection,
            self.contexts,
            parse_token(token, settings.consistency_secret, caller.user_id),
            settings.consistency_wait_s,
            self.versions_in,
        )
