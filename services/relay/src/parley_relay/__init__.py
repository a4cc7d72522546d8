"""Transactional-outbox relay: the only road from a committed event to Kafka."""
