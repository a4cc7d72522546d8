"""What every command route shares: the optional request headers a command takes, and the
consistency token its response hands out (read-your-writes, consistency.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Response

from parley_http.consistency import HEADER, ConsistencyToken

# a retried command with the same key returns the first result and appends nothing
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
CorrelationId = Annotated[str | None, Header(alias="X-Correlation-Id", max_length=200)]


def hand_out_token(
    response: Response, context: str, stream_id: str, version: int, *, caller: str, secret: str
) -> None:
    """Set `X-Consistency-Token` for the write of `version` to `stream_id` in `context` by
    `caller`, signed with the shared consistency secret. No secret configured: no token (a
    reader could not verify it; the caller reads without read-your-writes)."""
    if secret:
        token = ConsistencyToken(context, stream_id, version, caller).sign(secret)
        response.headers[HEADER] = token
