"""Users command service: user profiles as event-sourced aggregates."""
