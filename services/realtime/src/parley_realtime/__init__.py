"""Parley's realtime gateway: pushes what happens to signed-in people over SSE and WebSocket,
fanned out from Kafka by every replica, with resume cursors, typing and presence."""
