"""The search read model in PostgreSQL (issue 21): see views.py and docs/decisions.md."""
