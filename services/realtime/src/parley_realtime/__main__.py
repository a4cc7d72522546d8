"""`python -m parley_realtime`: the realtime gateway (push streams, typing, presence)."""

from __future__ import annotations

import gc

from parley_observability.ops import serve_http

from parley_realtime.bootstrap import bootstrap
from parley_realtime.config import Settings


def main() -> None:
    # thousands of long-lived streams make the heap large: the default thresholds ran a full
    # collection every few seconds under load, each stalling every stream for up to a second
    # or two (bench: realtime.fanout_1000). Young collections stay frequent; full ones rare.
    gc.set_threshold(20_000, 20, 100)
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
