"""The end-to-end tier drives the running local cluster (`make up`) only through public
interfaces: HTTP through the gateway and Kafka topics as an outside consumer would."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def gateway_url() -> str:
    host = os.environ.get("PARLEY_HOST", "127.0.0.1")
    return os.environ.get(
        "PARLEY_GATEWAY_URL", f"http://{host}:{os.environ.get('PARLEY_GATEWAY_PORT', '8080')}"
    )
