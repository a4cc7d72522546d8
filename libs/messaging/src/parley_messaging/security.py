"""How every Parley process authenticates to Kafka: one place for the client options.

Brokers accept only authenticated clients (SASL/SCRAM-SHA-512) and authorise each principal
with ACLs (parley_messaging.access). Each process runs as its own principal, named by

    PARLEY_KAFKA_USERNAME / PARLEY_KAFKA_PASSWORD     the principal and its SCRAM secret
    PARLEY_KAFKA_SECURITY_PROTOCOL                    SASL_PLAINTEXT (default) or SASL_SSL
    PARLEY_KAFKA_SASL_MECHANISM                       SCRAM-SHA-512 (default)
    PARLEY_KAFKA_CA_FILE                              the brokers' CA, with SASL_SSL

and every AIOKafkaConsumer, AIOKafkaProducer and AIOKafkaAdminClient in the repository is
built with `**kafka_security()`. These variables are process-wide rather than per-service
settings on purpose: a process is one principal, whatever consumers and producers it runs
(users-api's saga participant and its registrations consumer are both `users-api`).

Without PARLEY_KAFKA_USERNAME the options are empty (PLAINTEXT): a broker without
authentication (a throwaway testcontainer) still works, and a secured broker refuses the
connection, which is the point.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

USERNAME = "PARLEY_KAFKA_USERNAME"
PASSWORD = "PARLEY_KAFKA_PASSWORD"  # noqa: S105 - the variable's name, not a secret
PROTOCOL = "PARLEY_KAFKA_SECURITY_PROTOCOL"
MECHANISM = "PARLEY_KAFKA_SASL_MECHANISM"
CA_FILE = "PARLEY_KAFKA_CA_FILE"

DEFAULT_PROTOCOL = "SASL_PLAINTEXT"
DEFAULT_MECHANISM = "SCRAM-SHA-512"


def credentials_env(
    username: str, password: str, protocol: str = DEFAULT_PROTOCOL
) -> dict[str, str]:
    """The variables that make a process (or a child process) run as `username`."""
    return {USERNAME: username, PASSWORD: password, PROTOCOL: protocol}


def kafka_security(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for aiokafka's clients: the principal of this process (or none)."""
    env = os.environ if env is None else env
    username = env.get(USERNAME, "")
    if not username:
        return {}
    protocol = env.get(PROTOCOL) or DEFAULT_PROTOCOL
    options: dict[str, Any] = {
        "security_protocol": protocol,
        "sasl_mechanism": env.get(MECHANISM) or DEFAULT_MECHANISM,
        "sasl_plain_username": username,
        "sasl_plain_password": env.get(PASSWORD, ""),
    }
    if protocol.endswith("SSL"):
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(cafile=env.get(CA_FILE) or None)
    return options


def as_principal(username: str, password: str) -> dict[str, Any]:
    """Client options for an explicit principal (tests and tools acting as someone else)."""
    return kafka_security(credentials_env(username, password))
