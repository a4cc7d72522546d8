"""Search without `$text` (FerretDB 1.24 has none): documents keep an indexed array of
normalised prefix tokens, and a query is an equality match on one normalised token
(`{field: normalise(q)}`), which MongoDB answers from a multikey index.

Normalisation makes search case- and accent-insensitive: Unicode NFKD, combining marks
dropped, casefolded, whitespace collapsed ("Émilie  Noël" -> "emilie noel"). The tokens of a
text are the prefixes (up to `MAX_PREFIX` characters) of each of its words and of the whole
normalised text, so "noe", "emilie n" and "emil" all find "Émilie Noël". A query longer than
`MAX_PREFIX` is cut to it (then it may match a little more than it says).
"""

from __future__ import annotations

import re
import unicodedata

MAX_PREFIX = 20
_WORD = re.compile(r"[^\W_]+")  # letters and digits; punctuation, '_' and spaces split words


def normalise(text: str) -> str:
    if text.isascii():  # nothing to decompose (most names; a projector hot path)
        return " ".join(text.casefold().split())
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


def prefixes(word: str, max_len: int = MAX_PREFIX) -> list[str]:
    return [word[:n] for n in range(1, min(len(word), max_len) + 1)]


def prefix_tokens(text: str, max_len: int = MAX_PREFIX) -> list[str]:
    """The sorted, distinct tokens a document stores for `text`."""
    whole = normalise(text)
    tokens = set(prefixes(whole, max_len))
    for word in _WORD.findall(whole):
        tokens.update(prefixes(word, max_len))
    return sorted(tokens)


def query_token(q: str, max_len: int = MAX_PREFIX) -> str:
    """The token a query `q` is looked up by ("" for a blank query: no filter)."""
    return normalise(q)[:max_len].strip()


def query_words(q: str, max_len: int = MAX_PREFIX) -> list[str]:
    """The words of a query, each a token of `prefix_tokens` when a document has a word that
    starts with it: a query for all of them (`{field: {$all: words}}`) finds "Émilie Noël" by
    "noel emi", in any order ([] for a query without letters or digits)."""
    return list(dict.fromkeys(word[:max_len] for word in _WORD.findall(normalise(q))))
