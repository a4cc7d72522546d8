"""Parley's own processes in the local cluster: one entry per deployable, so `make up`, `make ps`
and `make kill` know them by a name that says what they are (relay-users, projector-chat, ...).

Grows as services appear; the infrastructure processes live in cluster.py.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from settings import Program

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServiceProgram:
    program: Program
    port: int = 0
    upstream: str = ""  # nginx upstream name, for HTTP services behind the gateway
    health_url: str = ""


# Command-service databases (one per bounded context, DESIGN.md 3).
DATABASES: tuple[str, ...] = ()


def service_programs(s: Any) -> list[ServiceProgram]:
    """Every Parley process for settings `s` (empty until the services exist)."""
    del s
    return []


def prepare_services(s: Any) -> None:
    """Create each service database and apply its migrations (idempotent)."""
    del s
    _ = sys.executable
