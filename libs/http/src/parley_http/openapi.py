"""The OpenAPI document says what the service really answers: every error is
`application/problem+json` (RFC 9457) with a `type` URI per kind of problem (listed in
docs/problems.md), and the statuses a route can give are declared: 401 and 403 where a token
is needed, 404 where the path names something, 409 for writes, 422 for bad input (not
FastAPI's `HTTPValidationError`: the edge answers problem+json), 429 and 503 everywhere."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from parley_http.problems import PROBLEM_JSON, PROBLEM_TYPES

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "the kind of problem (docs/problems.md)"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "field errors (422)",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}
DESCRIPTIONS = {
    401: "no valid access token",
    403: "the caller may not do this",
    404: "no such thing (or not the caller's to see)",
    409: "conflicts with the current state, or the target changed meanwhile: retry",
    410: "the person was forgotten",
    413: "the body is too large",
    422: "invalid input: `errors` lists the fields",
    429: "too many requests: see Retry-After",
    503: "a dependency is not answering: retry after Retry-After",
}
WRITES = {"post", "put", "patch", "delete"}


def _problem(status: int) -> dict[str, Any]:
    schema = {"allOf": [{"$ref": "#/components/schemas/Problem"}]}
    example = {"type": PROBLEM_TYPES.get(status, "about:blank"), "status": status}
    return {
        "description": DESCRIPTIONS[status],
        "content": {PROBLEM_JSON: {"schema": schema, "example": example}},
    }


def statuses_of(method: str, path: str, operation: dict[str, Any]) -> list[int]:
    found = [422, 429, 503]
    if operation.get("security"):
        found += [401, 403]
    if "{" in path:
        found.append(404)
    if method in WRITES:
        found += [409, 413]
    return sorted(found)


def document_problems(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        components["Problem"] = PROBLEM_SCHEMA
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                responses = operation.setdefault("responses", {})
                for status in statuses_of(method, path, operation):
                    responses[str(status)] = _problem(status)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
