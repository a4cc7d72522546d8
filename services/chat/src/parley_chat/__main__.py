"""`python -m parley_chat`: serve the chat command API."""

from __future__ import annotations

from parley_observability.ops import serve_http

from parley_chat.bootstrap import bootstrap
from parley_chat.config import Settings


def main() -> None:
    settings = Settings()
    serve_http(bootstrap(settings), "chat", settings.host, settings.port, settings.log_level)


if __name__ == "__main__":
    main()
