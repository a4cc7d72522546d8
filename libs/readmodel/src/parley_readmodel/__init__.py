"""Projector runtime: Kafka topics -> MongoDB read models."""
