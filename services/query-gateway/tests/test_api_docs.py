"""The gateway's one API document: current with the services (regenerate it with
`uv run python docs/openapi.py`), every error declared as problem+json, and served at /docs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import httpx
from parley_http.apidocs import Clash, merge, packaged
from parley_query_gateway.bootstrap import bootstrap

ROOT = Path(__file__).resolve().parents[3]


def generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("docs_openapi", ROOT / "docs" / "openapi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_merged_document_is_current() -> None:
    fresh = json.loads(generator().render())
    assert fresh == packaged(), "run `uv run python docs/openapi.py` and commit the result"


def test_every_operation_declares_its_errors_as_problems() -> None:
    document = packaged()
    assert "HTTPValidationError" not in json.dumps(document)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            for status in ("422", "503"):
                content = responses[status]["content"]
                assert list(content) == ["application/problem+json"], (method, path, status)
            if operation.get("security"):
                assert {"401", "403"} <= set(responses), (method, path)
    types = {
        r["content"]["application/problem+json"]["example"]["type"]
        for item in document["paths"].values()
        for op in item.values()
        for status, r in op["responses"].items()
        if status >= "400"
    }
    assert "about:blank" not in types and "/problems/not-found" in types


def test_two_services_answering_one_route_is_refused() -> None:
    one = {"paths": {"/v1/x": {"get": {"responses": {}}}}}
    try:
        merge({"a": one, "b": one})
    except Clash:
        return
    raise AssertionError("a clash was merged")


async def test_the_gateway_serves_the_page_and_the_document() -> None:
    app = bootstrap()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://query") as client:
        page = await client.get("/docs")
        document = await client.get("/docs/openapi.json")
    assert page.status_code == 200 and "/v1/conversations/{conversation_id}/messages" in page.text
    assert document.json()["paths"].keys() == packaged()["paths"].keys()
