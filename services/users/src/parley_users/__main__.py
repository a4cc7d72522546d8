"""`python -m parley_users`: serve the users command API."""

from __future__ import annotations

from parley_observability.ops import serve_http

from parley_users.bootstrap import bootstrap
from parley_users.config import Settings


def main() -> None:
    settings = Settings()
    serve_http(bootstrap(settings), "users", settings.host, settings.port, settings.log_level)


if __name__ == "__main__":
    main()
