"""RFC 9457 problem details for every error a Parley service returns.

Bad input is the client's problem and gets a 4xx that says what is wrong (field errors
listed); an unexpected failure gets a bare 500 problem with no stack trace or internals.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
# one `type` per kind of problem (RFC 9457 3.1.1), relative to the API's base; what each
# means and what a client should do about it: docs/problems.md
PROBLEM_TYPES: dict[int, str] = {
    400: "/problems/bad-request",
    401: "/problems/unauthorized",
    403: "/problems/forbidden",
    404: "/problems/not-found",
    405: "/problems/method-not-allowed",
    409: "/problems/conflict",
    410: "/problems/gone",
    413: "/problems/too-large",
    414: "/problems/uri-too-long",
    422: "/problems/invalid-request",
    429: "/problems/too-many-requests",
    431: "/problems/headers-too-large",
    500: "/problems/internal",
    503: "/problems/unavailable",
}


def problem_type(status: int) -> str:
    return PROBLEM_TYPES.get(status, "about:blank")


log = logging.getLogger("parley.http")


class Problem(Exception):
    """Raise from a route or handler to answer with a problem+json body."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_ or problem_type(status)
        self.headers = headers or {}
        self.extensions = extensions


def try_again_soon(detail: str) -> Problem:
    """503 with `Retry-After: 1`: something the request needs (the key service, the
    revocation list, a read model catching up) is not ready yet; the same request will do."""
    return Problem(503, "Service Unavailable", detail, headers={"Retry-After": "1"})


def problem_response(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    type_: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_ or problem_type(status), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def field_errors(error: RequestValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors as {field, message, type}: enough to fix the request, no internals."""
    fields = []
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ()) if part != "body"]
        fields.append(
            {
                "field": ".".join(location) or "body",
                "message": item.get("msg", "invalid"),
                "type": item.get("type", "value_error"),
            }
        )
    return fields


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error path of a FastAPI app to problem+json."""

    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.title,
            exc.detail,
            type_=exc.type,
            instance=request.url.path,
            headers=exc.headers,
            **exc.extensions,
        )

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(
            422,
            "Invalid request",
            "the request does not match the schema",
            instance=request.url.path,
            errors=field_errors(exc),
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "HTTP error")
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(
            exc.status_code, title, detail, instance=request.url.path, headers=headers
        )

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # the trace goes to the log (with the request path), never to the client
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "Internal Server Error", instance=request.url.path)
