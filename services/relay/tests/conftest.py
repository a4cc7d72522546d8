"""Fixtures live in relay_harness (a uniquely named module the tests import from)."""

from relay_harness import bench, relay_task

__all__ = ["bench", "relay_task"]
