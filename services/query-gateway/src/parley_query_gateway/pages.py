"""Keyset pagination: an opaque cursor that holds the sort key of the last item of a page.

The next page is "everything after that key" (no skip/offset: a page costs the same at any
depth, and items inserted or removed between requests neither repeat nor hide others). The
cursor is URL-safe base64 of a small JSON list; a client treats it as opaque.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from parley_http.problems import Problem
from parley_http.text import flaw


def encode_cursor(*key: str) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, parts: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key: Any = json.loads(raw)
    except (binascii.Error, ValueError) as error:
        raise Problem(400, "Bad Request", "cursor is not one this service issued") from error
    # a forged cursor's strings go into store queries: a NUL or a lone surrogate would fail
    # there as a 5xx (the edge sees only base64)
    if not (
        isinstance(key, list)
        and len(key) == parts
        and all(isinstance(k, str) and flaw(k) is None for k in key)
    ):
        raise Problem(400, "Bad Request", "cursor is not one this service issued")
    return key


def after(fields: tuple[str, ...], key: list[str]) -> dict[str, Any]:
    """The filter "sort key > key" for an ascending sort on `fields` (lexicographic)."""
    alternatives: list[dict[str, Any]] = []
    for i, name in enumerate(fields):
        equal = {fields[j]: key[j] for j in range(i)}
        alternatives.append({**equal, name: {"$gt": key[i]}})
    return alternatives[0] if len(alternatives) == 1 else {"$or": alternatives}
