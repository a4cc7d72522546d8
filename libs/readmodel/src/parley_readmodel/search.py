"""Search without `$text` (FerretDB 1.24 has none): a read model stores, per document, an array
of normalised tokens (every word and its prefixes), indexed; a query matches one token exactly,
so `search: "hel"` finds "Hello". The projector and the query gateway share this one function
so both sides normalise alike.

Normalisation: NFKD, combining marks dropped, casefold ("Ärger" -> "arger", "ﬁne" -> "fine");
words are runs of letters and digits. Prefixes start at MIN_PREFIX characters (shorter words
are kept whole) and stop at MAX_TOKEN (longer words match on their first MAX_TOKEN characters,
and a query token is cut the same way).
"""

from __future__ import annotations

import re
import unicodedata

MIN_PREFIX = 2
MAX_TOKEN = 20
MAX_TOKENS = 2000  # per document: a 4,000-character message stays well below 16 MB anyway
_WORD = re.compile(r"[^\W_]+")


def normalise(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.casefold()


def words(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


def tokens(text: str) -> list[str]:
    """Every word and its prefixes, deduplicated, in first-seen order (deterministic)."""
    out: dict[str, None] = {}
    for word in words(text):
        word = word[:MAX_TOKEN]
        if len(word) < MIN_PREFIX:
            out[word] = None
        for end in range(MIN_PREFIX, len(word) + 1):
            out[word[:end]] = None
        if len(out) >= MAX_TOKENS:
            break
    return list(out)[:MAX_TOKENS]


def query_tokens(q: str) -> list[str]:
    """The tokens a query must all match (each a word or a prefix of one)."""
    return list(dict.fromkeys(word[:MAX_TOKEN] for word in words(q)))
