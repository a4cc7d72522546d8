"""`python -m parley_registration_saga`: the registration saga orchestrator."""

from __future__ import annotations

from parley_observability.ops import serve_http

from parley_registration_saga.bootstrap import bootstrap
from parley_registration_saga.config import Settings


def main() -> None:
    settings = Settings()
    serve_http(
        bootstrap(settings), "registration-saga", settings.host, settings.port, settings.log_level
    )


if __name__ == "__main__":
    main()
