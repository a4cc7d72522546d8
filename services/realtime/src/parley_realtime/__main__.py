"""`python -m parley_realtime`: the realtime gateway (push streams, typing, presence)."""

from __future__ import annotations

from parley_observability.ops import serve_http

from parley_realtime.bootstrap import bootstrap
from parley_realtime.config import Settings


def main() -> None:
    settings = Settings()
    serve_http(
        bootstrap(settings),
        "realtime-gateway",
        settings.host,
        settings.port,
        settings.log_level,
        graceful_shutdown_s=3,  # streams resume from their cursor on another replica
    )


if __name__ == "__main__":
    main()
