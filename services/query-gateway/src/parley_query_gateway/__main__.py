"""`python -m parley_query_gateway`: serve the read models."""

from __future__ import annotations

import uvicorn
from parley_observability.logs import configure_logging
from parley_observability.tracing import configure_tracing

from parley_query_gateway.bootstrap import bootstrap
from parley_query_gateway.config import Settings


def main() -> None:
    settings = Settings()
    configure_logging("query-gateway", settings.log_level)
    configure_tracing("query-gateway")
    # nginx keeps the access log; a JSON line per request here cost a large share of the CPU
    uvicorn.run(
        bootstrap(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
