"""Master-key wrapping of data keys (issue 19.5), without servers: round trip, binding to
the row, rotation, malformed keys."""

from __future__ import annotations

import base64
import os

import pytest
from parley_privacy.wrapping import MasterKeyError, MasterKeys, decode_key, new_master_key


def test_a_wrapped_key_unwraps_only_for_its_row_and_master_key() -> None:
    master = MasterKeys.parse(new_master_key(), "m1")
    secret = os.urandom(32)
    wrap_kid, wrapped = master.wrap("alice", "k1", secret)
    assert wrap_kid == "m1" and secret not in wrapped and len(wrapped) == 12 + 32 + 16
    assert master.unwrap("m1", "alice", "k1", wrapped) == secret
    with pytest.raises(MasterKeyError):  # copied into bob's row
        master.unwrap("m1", "bob", "k1", wrapped)
    with pytest.raises(MasterKeyError):  # relabelled with another data key id
        master.unwrap("m1", "alice", "k2", wrapped)
    with pytest.raises(MasterKeyError):  # another master key
        MasterKeys.parse(new_master_key(), "m1").unwrap("m1", "alice", "k1", wrapped)
    with pytest.raises(MasterKeyError):  # a master key id nobody configured
        master.unwrap("m0", "alice", "k1", wrapped)


def test_rotation_keeps_old_rows_readable_and_wraps_new_ones_under_the_new_key() -> None:
    old_text = new_master_key()
    old = MasterKeys.parse(old_text, "m1")
    secret = os.urandom(32)
    _, wrapped = old.wrap("alice", "k1", secret)
    rotated = MasterKeys.parse(new_master_key(), "m2", f"m1:{old_text}")
    assert rotated.unwrap("m1", "alice", "k1", wrapped) == secret
    assert rotated.wrap("alice", "k1", secret)[0] == "m2"


def test_master_keys_are_32_bytes_of_base64_either_alphabet() -> None:
    raw = os.urandom(32)
    assert decode_key(base64.b64encode(raw).decode()) == raw
    assert decode_key(base64.urlsafe_b64encode(raw).rstrip(b"=").decode()) == raw
    for bad in ("", "not base64!", base64.b64encode(os.urandom(16)).decode()):
        with pytest.raises(MasterKeyError):
            decode_key(bad)
    with pytest.raises(MasterKeyError):
        MasterKeys.parse(new_master_key(), "m2", "m1")  # no `id:` before the key
    assert "keys" not in repr(MasterKeys.parse(new_master_key(), "m1")).split("(", 1)[1]
