"""`python -m parley_notifications`: serve the notifications command API and its policy."""

from __future__ import annotations

from parley_observability.ops import serve_http

from parley_notifications.bootstrap import bootstrap
from parley_notifications.config import Settings


def main() -> None:
    settings = Settings()
    serve_http(
        bootstrap(settings), "notifications", settings.host, settings.port, settings.log_level
    )


if __name__ == "__main__":
    main()
