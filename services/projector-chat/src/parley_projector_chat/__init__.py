"""Projector of the chat context: chat.events -> memberships, messages, conversations."""
