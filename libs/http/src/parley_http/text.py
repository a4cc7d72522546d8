"""Text no store of Parley can take, whatever field it arrives in.

Two kinds of character make a driver fail instead of the request: the NUL character
(PostgreSQL's text types refuse it with CharacterNotInRepertoireError; BSON keys end at it)
and lone surrogates (U+D800..U+DFFF without their pair: no UTF-8 encoding exists, so asyncpg,
PyMongo and the JSON renderer raise UnicodeEncodeError). A client can put either into any
string (`"\\u0000"` in a JSON body, `%00` in a URL), and either reaching a driver was a 500.
The HTTP edge refuses them for every request (edge.CleanInput); the decoders of opaque tokens
check the strings they unpack with the same function, because the edge sees only base64.

Pure: no I/O, no framework.
"""

from __future__ import annotations

import re
from typing import Any

# one search finds both; Python strings from json.loads hold a surrogate only when it is lone
# (a valid escaped pair becomes one astral character)
_FLAWED = re.compile("[\x00\ud800-\udfff]")
NUL = "contains a NUL character"
SURROGATE = "contains a lone surrogate (not Unicode text)"


def flaw(text: str) -> str | None:
    """Why `text` cannot be stored (NUL, SURROGATE), or None when it can."""
    found = _FLAWED.search(text)
    if found is None:
        return None
    return NUL if found.group() == "\x00" else SURROGATE


def first_flaw(value: Any) -> tuple[str, str] | None:
    """The first string of a JSON value (keys and values, at any depth) with a flaw, as
    (dotted path, reason): ("muted_conversations.2", NUL); "" is the value itself.

    Iterative, so it also walks values nested deeper than the interpreter's recursion limit.
    A flawed key is reported at the path of the object that holds it (the key itself cannot
    be echoed back: it may be the unencodable text)."""
    stack: list[tuple[tuple[str, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            reason = flaw(item)
            if reason is not None:
                return ".".join(path), reason
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                reason = flaw(key) if isinstance(key, str) else None
                if reason is not None:
                    return ".".join(path), f"has a key that {reason}"
                children.append(((*path, str(key)), child))
            stack.extend(reversed(children))  # reported in document order
        elif isinstance(item, list | tuple):
            stack.extend(reversed([((*path, str(i)), child) for i, child in enumerate(item)]))
    return None
