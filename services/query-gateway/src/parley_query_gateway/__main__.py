"""`python -m parley_query_gateway`: serve the read models."""

from __future__ import annotations

from parley_observability.ops import serve_http

from parley_query_gateway.bootstrap import bootstrap
from parley_query_gateway.config import Settings


def main() -> None:
    settings = Settings()
    serve_http(
        bootstrap(settings), "query-gateway", settings.host, settings.port, settings.log_level
    )


if __name__ == "__main__":
    main()
