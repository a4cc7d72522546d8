"""Chat command service: conversations as event-sourced aggregates (messages, read marks)."""
