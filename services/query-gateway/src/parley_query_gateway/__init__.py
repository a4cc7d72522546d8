"""Query gateway: the read side of Parley over HTTP (MongoDB read models only)."""
