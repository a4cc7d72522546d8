"""`python -m parley_auth`: serve the auth command API."""

from __future__ import annotations

from parley_observability.ops import serve_http

from parley_auth.bootstrap import bootstrap
from parley_auth.config import Settings


def main() -> None:
    settings = Settings()
    serve_http(bootstrap(settings), "auth", settings.host, settings.port, settings.log_level)


if __name__ == "__main__":
    main()
