"""Parley registration saga orchestrator."""
