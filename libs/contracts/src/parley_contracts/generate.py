"""Write the committed artefacts of the contract: one JSON Schema per event version under
libs/contracts/schemas/ and the AsyncAPI document under docs/. Run after changing an event:

    uv run python -m parley_contracts.generate
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from parley_contracts.asyncapi import asyncapi_document
from parley_contracts.registry import all_events

REPO = Path(__file__).resolve().parents[4]
SCHEMAS = REPO / "libs" / "contracts" / "schemas"
ASYNCAPI = REPO / "docs" / "asyncapi.json"


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def expected_files() -> dict[Path, str]:
    files = {
        SCHEMAS / f"{ce_type}.json": render(cls.json_schema())
        for ce_type, cls in all_events().items()
    }
    files[ASYNCAPI] = render(asyncapi_document())
    return files


def main() -> None:
    for path, text in expected_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
