"""Build the gateway's one API document from every HTTP service's own:
`uv run python docs/openapi.py` writes libs/http/src/parley_http/openapi.json (committed; a
test fails when it is out of date). Services are built with default settings: no I/O."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from parley_http.apidocs import merge

TARGET = Path(__file__).resolve().parents[1] / "libs/http/src/parley_http/openapi.json"


def documents() -> dict[str, dict[str, Any]]:
    from parley_auth.bootstrap import bootstrap as auth
    from parley_chat.bootstrap import bootstrap as chat
    from parley_notifications.bootstrap import bootstrap as notifications
    from parley_query_gateway.bootstrap import bootstrap as query
    from parley_realtime.bootstrap import bootstrap as realtime
    from parley_registration_saga.bootstrap import bootstrap as saga
    from parley_users.bootstrap import bootstrap as users

    apps = {
        "auth": auth(),
        "users": users(),
        "chat": chat(),
        "notifications": notifications(),
        "query": query(),
        "registration": saga(),
        "realtime": realtime(),
    }
    return {name: app.openapi() for name, app in apps.items()}


def render() -> str:
    return json.dumps(merge(documents()), indent=1, sort_keys=True) + "\n"


def main() -> int:
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
