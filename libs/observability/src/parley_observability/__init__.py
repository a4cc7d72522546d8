"""Observability shared by every Parley process: traces, metrics, JSON logs, health."""
