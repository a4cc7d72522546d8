"""Registration tokens (issue 19): the HMAC of the registration id under the shared secret."""

from __future__ import annotations

import uuid

import pytest
from parley_http.registration import holds_registration, registration_token


def test_the_token_opens_its_own_registration_only() -> None:
    mine, other = str(uuid.uuid4()), str(uuid.uuid4())
    token = registration_token("secret", mine)
    assert len(token) == 22  # 16 bytes, URL-safe base64 without padding
    assert registration_token("secret", mine) == token  # nothing stored: recomputed
    assert holds_registration("secret", mine, token)
    assert not holds_registration("secret", other, token)
    assert not holds_registration("another secret", mine, token)
    assert not holds_registration("secret", mine, None)
    assert not holds_registration("secret", mine, token[:-1])
    assert not holds_registration("", mine, token)  # no secret: nobody reads a registration


def test_a_token_needs_a_secret() -> None:
    with pytest.raises(ValueError):
        registration_token("", str(uuid.uuid4()))
