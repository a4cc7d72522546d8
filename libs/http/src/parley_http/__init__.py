"""HTTP edge shared by Parley's FastAPI services: problem+json errors, body limits, hostile
input refused (edge.py), tokens."""
