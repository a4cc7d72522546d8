"""Notifications command service: in-app and email notifications of chat messages."""
