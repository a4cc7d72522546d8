"""Consistency tokens: what a command response hands the client so a later GET can wait for the
read model to reach that write (read-your-writes, DESIGN.md 1 and 5).

A token names the aggregate stream and the version the command produced. It is opaque to
clients (URL-safe base64 of a small JSON document) and versioned so its shape can change.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from parley_http.text import flaw

HEADER = "X-Consistency-Token"


class InvalidToken(ValueError):
    pass


@dataclass(frozen=True)
class ConsistencyToken:
    context: str
    stream_id: str
    version: int

    def encode(self) -> str:
        raw = json.dumps(
            {"t": 1, "c": self.context, "s": self.stream_id, "v": self.version},
            separators=(",", ":"),
        ).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> ConsistencyToken:
        try:
            padded = token + "=" * (-len(token) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode()))
            if data.get("t") != 1:
                raise InvalidToken("unknown token version")
            version = data["v"]
            if not isinstance(version, int) or version < 1:
                raise InvalidToken("bad version")
            context, stream_id = str(data["c"]), str(data["s"])
            # the edge sees base64 only: a forged token could carry a NUL or a lone surrogate
            # into the read model's queries (text.py)
            if flaw(context) or flaw(stream_id):
                raise InvalidToken("not text a store can take")
            return cls(context, stream_id, version)
        except (binascii.Error, ValueError, KeyError, TypeError, AttributeError) as error:
            raise InvalidToken(f"not a consistency token: {error}") from error
