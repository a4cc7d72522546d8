"""Consistency tokens: what a command response hands the client so a later GET can wait for the
read model to reach that write (read-your-writes, DESIGN.md 1 and 5).

A token names the aggregate stream, the version the command produced and the caller who ran
it. It is opaque to clients and versioned so its shape can change:

- v2 (issued): `<payload>.<mac>`, both URL-safe base64 without padding; the payload is the
  JSON `{"t":2,"c":context,"s":stream,"v":version,"u":caller}` and the mac the first 16 bytes
  of HMAC-SHA256 over `b"parley-consistency-v2." + payload` with the secret every command
  service and the query gateway share (`<PREFIX>_CONSISTENCY_SECRET`). A reader honours a
  token only for the caller it was issued to (`verify`), so nobody can make the gateway wait
  on, or learn the progress of, a stream they did not write (issue 19).
- v1 (retired): the same JSON with `"t":1` and no mac. `decode` still reads it (tools, old
  logs); `verify` ignores it, like a forged or another caller's token: the read goes on as if
  no token had been sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from parley_http.text import flaw

HEADER = "X-Consistency-Token"
MAC_BYTES = 16  # 128 bits: forging one takes 2**128 guesses, and each guess is a request
_DOMAIN = b"parley-consistency-v2."


class InvalidToken(ValueError):
    """Not a token in any version's shape (not base64, not JSON, fields missing)."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode())


def _mac(secret: str, payload: str) -> bytes:
    return hmac.new(secret.encode(), _DOMAIN + payload.encode(), hashlib.sha256).digest()[
        :MAC_BYTES
    ]


@dataclass(frozen=True)
class ConsistencyToken:
    context: str
    stream_id: str
    version: int
    caller: str | None = None  # the principal who ran the command (None: a v1 token)

    def sign(self, secret: str) -> str:
        """The v2 token for the caller (`caller` must be set, `secret` must not be empty)."""
        if self.caller is None or not secret:
            raise ValueError("a signed token needs a caller and a secret")
        payload = _b64(
            json.dumps(
                {
                    "t": 2,
                    "c": self.context,
                    "s": self.stream_id,
                    "v": self.version,
                    "u": self.caller,
                },
                separators=(",", ":"),
            ).encode()
        )
        return f"{payload}.{_b64(_mac(secret, payload))}"

    @classmethod
    def decode(cls, token: str) -> ConsistencyToken:
        """The fields of a v1 or v2 token, the signature NOT checked (tools and tests; a
        reader uses `verify`). InvalidToken: not a token in either shape."""
        return _fields(token.partition(".")[0])

    @classmethod
    def verify(cls, token: str, secret: str, caller: str) -> ConsistencyToken | None:
        """The token if we signed it for `caller`; None for a wrong or missing mac, another
        caller's token, a v1 (unsigned) token, or no secret configured: the reader ignores
        it. InvalidToken: not a token at all (the gateway's 400, as before)."""
        payload, dot, mac = token.partition(".")
        found = _fields(payload)
        if not dot or found.caller is None or not secret:
            return None
        try:
            given = _unb64(mac)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(given, _mac(secret, payload)):
            return None
        return found if found.caller == caller else None


def _fields(payload: str) -> ConsistencyToken:
    try:
        data = json.loads(_unb64(payload))
        kind = data.get("t")
        if kind not in (1, 2):
            raise InvalidToken("unknown token version")
        version = data["v"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidToken("bad version")
        context, stream_id = str(data["c"]), str(data["s"])
        caller = str(data["u"]) if kind == 2 else None
        # the edge sees base64 only: a forged token could carry a NUL or a lone surrogate
        # into the read model's queries (text.py)
        if flaw(context) or flaw(stream_id) or (caller is not None and flaw(caller)):
            raise InvalidToken("not text a store can take")
        return ConsistencyToken(context, stream_id, version, caller)
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError) as error:
        if isinstance(error, InvalidToken):
            raise
        raise InvalidToken(f"not a consistency token: {error}") from error
