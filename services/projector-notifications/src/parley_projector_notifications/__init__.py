"""Projector of the notifications context: notifications.events -> the notifications read model."""
