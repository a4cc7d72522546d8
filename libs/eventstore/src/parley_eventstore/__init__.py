"""PostgreSQL event store, snapshots, upcasters, idempotent commands, transactional outbox."""
