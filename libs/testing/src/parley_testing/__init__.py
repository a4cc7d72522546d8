"""Test fixtures: PostgreSQL, Kafka and the Mongo-wire store from env, local cluster or Docker."""
