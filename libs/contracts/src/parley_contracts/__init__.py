"""Parley's public event contract: one pydantic model per event type and schema version.

Services' domains raise these events directly (the package is pure: pydantic only), so the
schema other teams read is generated from the very class the write side appends.
"""

from parley_contracts.base import Event, event_type_of
from parley_contracts.registry import all_events, lookup

__all__ = ["Event", "all_events", "event_type_of", "lookup"]
