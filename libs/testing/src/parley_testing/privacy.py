"""The running cluster's data-key endpoint for tests that read its events as a consumer does
(crypto-shredding: personal fields are encrypted; see parley_privacy). The address and the
internal token follow the local cluster's variables (PARLEY_HOST, PARLEY_SERVICE_PORT_BASE:
auth-api is base + 2) or PARLEY_KEYS_URL; the token is PARLEY_INTERNAL_TOKEN or the one
the local cluster generated into its state directory (`<PARLEY_STATE_DIR>/internal-token`)."""

from __future__ import annotations

import os
from pathlib import Path

from parley_privacy.client import KeyClient
from parley_privacy.fields import FieldCipher

ROOT = Path(__file__).resolve().parents[4]


def keys_url() -> str:
    host = os.environ.get("PARLEY_HOST", "127.0.0.1")
    auth = int(os.environ.get("PARLEY_SERVICE_PORT_BASE", "8100")) + 2
    return os.environ.get("PARLEY_KEYS_URL", f"http://{host}:{auth}")


def internal_token() -> str:
    token = os.environ.get("PARLEY_INTERNAL_TOKEN")
    if token:
        return token
    state = Path(os.environ.get("PARLEY_STATE_DIR", ROOT / ".local"))
    return (state / "internal-token").read_text().strip()


def cluster_cipher() -> FieldCipher:
    """A FieldCipher over the cluster's key endpoint (close it with `cipher.keys.close()`)."""
    return FieldCipher(KeyClient(keys_url(), internal_token()))


def cli_environment() -> dict[str, str]:
    """What the rebuild / re-drive CLIs read to decrypt (KEYS_URL, INTERNAL_TOKEN)."""
    return {"KEYS_URL": keys_url(), "INTERNAL_TOKEN": internal_token()}
