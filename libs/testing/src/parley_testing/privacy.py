"""The running cluster's data-key endpoint for tests that read its events as a consumer does
(crypto-shredding: personal fields are encrypted; see parley_privacy). The address follows
the local cluster's variables (PARLEY_HOST, PARLEY_SERVICE_PORT_BASE: auth-api's internal
port is base + 12) or PARLEY_KEYS_URL. Credentials are per caller (issue 19): a test acts as
one of the cluster's callers with that caller's credential, PARLEY_INTERNAL_TOKEN or the one
the local cluster generated into `<PARLEY_STATE_DIR>/internal-credentials/<caller>`."""

from __future__ import annotations

import os
from pathlib import Path

from parley_privacy.client import KeyClient
from parley_privacy.fields import FieldCipher

ROOT = Path(__file__).resolve().parents[4]
# who the tests act as by default: a command service's scopes (read and create keys, never
# destroy them), enough to seal and open personal fields
DEFAULT_CALLER = "chat-api"


def keys_url() -> str:
    host = os.environ.get("PARLEY_HOST", "127.0.0.1")
    internal = int(os.environ.get("PARLEY_SERVICE_PORT_BASE", "8100")) + 12
    return os.environ.get("PARLEY_KEYS_URL", f"http://{host}:{internal}")


def state_dir() -> Path:
    return Path(os.environ.get("PARLEY_STATE_DIR", ROOT / ".local"))


def caller_credential(caller: str) -> str:
    """The local cluster's credential of `caller` (users-api, projector-chat, ...)."""
    secret = (state_dir() / "internal-credentials" / caller).read_text().strip()
    return f"{caller}.{secret}"


def internal_token(caller: str = DEFAULT_CALLER) -> str:
    token = os.environ.get("PARLEY_INTERNAL_TOKEN")
    if token:
        return token
    return caller_credential(caller)


def cluster_cipher() -> FieldCipher:
    """A FieldCipher over the cluster's key endpoint (close it with `cipher.keys.close()`)."""
    return FieldCipher(KeyClient(keys_url(), internal_token()))


def cli_environment() -> dict[str, str]:
    """What the rebuild / re-drive CLIs read to decrypt (KEYS_URL, INTERNAL_TOKEN): they run
    as a projector, with its read-only credential."""
    return {"KEYS_URL": keys_url(), "INTERNAL_TOKEN": internal_token("projector-users")}
