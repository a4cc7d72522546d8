"""Signed consistency tokens (issue 19): only the caller the token was issued to, with the
shared secret, gets a token back from `verify`; everything else is ignored (None), and only
text that is no token at all is an error."""

from __future__ import annotations

import base64
import json

import pytest
from parley_http.consistency import ConsistencyToken, InvalidToken

SECRET = "s3cret"
TOKEN = ConsistencyToken("chat", "conv-1", 12, "alice")


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def payload_of(token: str) -> dict[str, object]:
    encoded = token.partition(".")[0]
    data: dict[str, object] = json.loads(base64.urlsafe_b64decode(encoded + "=="))
    return data


def test_the_signed_token_verifies_for_its_caller_only() -> None:
    signed = TOKEN.sign(SECRET)
    assert ConsistencyToken.verify(signed, SECRET, "alice") == TOKEN
    assert ConsistencyToken.verify(signed, SECRET, "bob") is None  # another caller's token
    assert ConsistencyToken.verify(signed, "another secret", "alice") is None
    assert ConsistencyToken.verify(signed, "", "alice") is None  # no secret: nothing verifies


def test_it_is_payload_dot_16_byte_mac_and_decode_reads_the_fields() -> None:
    signed = TOKEN.sign(SECRET)
    _, dot, mac = signed.partition(".")
    assert dot and len(base64.urlsafe_b64decode(mac + "==")) == 16
    assert payload_of(signed) == {"t": 2, "c": "chat", "s": "conv-1", "v": 12, "u": "alice"}
    assert ConsistencyToken.decode(signed) == TOKEN  # the fields, for tools: no secret needed


@pytest.mark.parametrize("field, value", [("v", 13), ("s", "conv-2"), ("c", "users"), ("u", "bob")])
def test_a_tampered_payload_is_ignored(field: str, value: object) -> None:
    signed = TOKEN.sign(SECRET)
    data = {**payload_of(signed), field: value}
    forged = b64(json.dumps(data, separators=(",", ":")).encode()) + "." + signed.partition(".")[2]
    assert ConsistencyToken.verify(forged, SECRET, str(data["u"])) is None


def test_a_tampered_or_missing_mac_is_ignored() -> None:
    payload, _, mac = TOKEN.sign(SECRET).partition(".")
    flipped = b64(bytes([base64.urlsafe_b64decode(mac + "==")[0] ^ 1])) + mac[2:]
    for forged in (
        payload,
        f"{payload}.",
        f"{payload}.{flipped}",
        f"{payload}.!!",
        f"{payload}.AA",
    ):
        assert ConsistencyToken.verify(forged, SECRET, "alice") is None, forged


def test_an_unsigned_v1_token_is_ignored_but_still_decodes() -> None:
    v1 = b64(json.dumps({"t": 1, "c": "chat", "s": "conv-1", "v": 12}).encode())
    assert ConsistencyToken.decode(v1) == ConsistencyToken("chat", "conv-1", 12)
    assert ConsistencyToken.verify(v1, SECRET, "alice") is None
    # a v1 payload with a mac appended gains nothing either
    assert (
        ConsistencyToken.verify(v1 + "." + TOKEN.sign(SECRET).partition(".")[2], SECRET, "alice")
        is None
    )


@pytest.mark.parametrize("garbage", ["", "!!!", "abc", "eyJ0IjoyfQ", b64(b"[1]"), b64(b'{"t":3}')])
def test_text_that_is_no_token_is_invalid(garbage: str) -> None:
    with pytest.raises(InvalidToken):
        ConsistencyToken.verify(garbage, SECRET, "alice")


def test_signing_needs_a_caller_and_a_secret() -> None:
    with pytest.raises(ValueError):
        ConsistencyToken("chat", "c", 1).sign(SECRET)
    with pytest.raises(ValueError):
        TOKEN.sign("")
