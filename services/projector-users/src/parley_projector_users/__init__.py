"""Projector of the users context: users.events -> the `users` read model."""
