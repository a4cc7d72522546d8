"""Projector runtime: consume Parley topics into MongoDB read models, idempotently."""
