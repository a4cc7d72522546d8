"""Normalised prefix tokens: case- and accent-insensitive search without $text."""

from parley_readmodel.search import normalise, prefix_tokens, query_token


def test_normalise_folds_case_accents_and_spaces() -> None:
    assert normalise("  Émilie   NOËL ") == "emilie noel"
    assert normalise("Straße") == "strasse"
    assert normalise("\uff26\uff55\uff4c\uff4c") == "full"  # fullwidth forms (NFKD)
    assert normalise("Åsa-Øst") == "asa-øst"  # ø has no decomposition: kept as is


def test_tokens_are_prefixes_of_each_word_and_of_the_whole_text() -> None:
    tokens = prefix_tokens("Émilie Noël")
    for query in ("e", "emil", "emilie", "emilie n", "emilie noel", "n", "noe", "noel"):
        assert query in tokens
    assert "milie" not in tokens  # prefixes, not substrings
    assert tokens == sorted(set(tokens))


def test_tokens_stop_at_the_longest_prefix() -> None:
    long = "a" * 50
    assert max(map(len, prefix_tokens(long))) == 20
    assert query_token(long) == "a" * 20


def test_email_local_parts_split_on_punctuation() -> None:
    tokens = prefix_tokens("ada.lovelace+news")
    assert {"ada", "lovelace", "news", "ada.lo"} <= set(tokens)


def test_a_query_is_looked_up_by_its_normalised_form() -> None:
    assert query_token("  ÉMI ") == "emi"
    assert query_token("emilie  NOËL") in prefix_tokens("Émilie Noël")
    assert query_token("   ") == ""
