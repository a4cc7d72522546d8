"""Kafka principals of the local cluster for tests: the test process itself runs as `admin`
(a super user: it creates topics and groups of its own, reads and writes anything), and a test
that must act as a service or as another team asks for that principal's client options.

Passwords are the ones `make up` generated into `<PARLEY_STATE_DIR>/kafka/users/<principal>`.
An explicit PARLEY_KAFKA_USERNAME in the environment wins (a cluster elsewhere); without
either, clients stay PLAINTEXT (a throwaway broker without authentication).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from parley_messaging.access import ADMIN
from parley_messaging.security import USERNAME, as_principal, credentials_env

ROOT = Path(__file__).resolve().parents[4]


def state_dir() -> Path:
    return Path(os.environ.get("PARLEY_STATE_DIR", ROOT / ".local"))


def users_dir() -> Path:
    return state_dir() / "kafka" / "users"


def broker_requires_sasl() -> bool:
    """Whether the local cluster's broker is configured for authentication (a cluster made
    before it was, not yet restarted by `make up`, still speaks PLAINTEXT only)."""
    properties = state_dir() / "kafka" / "server.properties"
    try:
        return "SASL_PLAINTEXT" in properties.read_text()
    except OSError:
        return False


def password(principal: str) -> str:
    """The local cluster's password of `principal` (FileNotFoundError: no such cluster)."""
    return (users_dir() / principal).read_text().strip()


def principal(name: str) -> dict[str, Any]:
    """aiokafka client options that authenticate as `name`."""
    return as_principal(name, password(name))


def principal_env(name: str) -> dict[str, str]:
    """The environment variables that make a child process `name`."""
    return credentials_env(name, password(name))


def run_as_admin(env: MutableMapping[str, str] | None = None) -> bool:
    """Make this process (and its children) the `admin` principal unless the environment
    names one already; False when there is no local cluster's password to use."""
    env = os.environ if env is None else env
    if env.get(USERNAME):
        return True
    if not broker_requires_sasl():
        return False
    try:
        env.update(principal_env(ADMIN))
    except FileNotFoundError:
        return False
    return True
