"""What every request passes before any route sees it, in one place so no route can forget it.

`install_edge(app)` gives a service its problem+json error handlers, the body size limit (413,
limits.py) and `CleanInput`, which refuses with a 4xx problem what would otherwise reach a
driver and fail as a 500:

- text no store can take (text.py: NUL, lone surrogates), and bytes that are not UTF-8 (how a
  lone surrogate arrives percent-encoded: `%ED%A0%80`), in the path, in query parameters, in
  header values, in form fields and in every string (keys too) of a JSON body: 422;
- JSON nested deeper than `max_depth`: 422 (deeper than the interpreter's recursion limit,
  the route's parser failed with a 400 "error parsing the body"; below it, every layer of
  validation walked it);
- URLs longer than `max_url_bytes` (414) and header values longer than `max_header_bytes`
  (431): nginx refuses both in front of the services, this covers a service reached directly.

Pure ASGI (like BodySizeLimit): a JSON body is read once, checked, and replayed to the app.
Bodies are small (the size limit sits outside this middleware), and the common case costs a
UTF-8 check and three counts: a body is parsed here only when it has `\\u` escapes (the only
way a JSON string can hold a NUL or a lone surrogate once the raw bytes are valid UTF-8) or
more brackets than `max_depth` (the only way it can nest deeper).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley_http.limits import BodySizeLimit
from parley_http.problems import install_problem_handlers, problem_response
from parley_http.text import NUL, first_flaw, flaw

MAX_DEPTH = 32  # Parley's bodies are one or two levels deep
MAX_URL_BYTES = 8 * 1024  # nginx's large_client_header_buffers line size
MAX_HEADER_BYTES = 8 * 1024
NOT_UTF8 = "is not UTF-8 text"
_FORM = b"application/x-www-form-urlencoded"


def install_edge(app: FastAPI, *, max_body_bytes: int = 64 * 1024) -> None:
    """problem+json for every error, bodies over `max_body_bytes` refused (413), hostile
    input refused (CleanInput). The size limit is the outer middleware: CleanInput buffers
    only bodies that passed it."""
    install_problem_handlers(app)
    app.add_middleware(CleanInput)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)


def _text(raw: bytes) -> tuple[str | None, str | None]:
    """(text, None), or (None, why) for bytes that are not UTF-8 or hold a flawed character."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, NOT_UTF8
    reason = flaw(text)
    return (None, reason) if reason else (text, None)


def _percent_decoded(raw: bytes, plus_is_space: bool) -> tuple[str | None, str | None]:
    if plus_is_space:
        raw = raw.replace(b"+", b" ")
    if b"%" in raw:
        raw = unquote_to_bytes(raw)
    return _text(raw)


def _pairs_flaw(raw: bytes, prefix: str, whole: str) -> tuple[str, str] | None:
    """The first flawed name or value of `a=1&b=2` (a query string, a form body), as
    (field, reason): field is `prefix` + the name (FastAPI's field for a query parameter is
    "query.<name>", for a body field its name) when the name is clean, else `whole`."""
    if raw.isascii() and b"%" not in raw and b"\x00" not in raw:
        return None  # nothing encoded: no way to spell a flawed character
    for part in raw.split(b"&"):
        name, _, value = part.partition(b"=")
        decoded, reason = _percent_decoded(name, plus_is_space=True)
        if reason is not None:
            return whole, f"has a parameter name that {reason}"
        _, reason = _percent_decoded(value, plus_is_space=True)
        if reason is not None:
            return (f"{prefix}{decoded}" if decoded else whole), reason
    return None


def nesting(value: Any) -> int:
    """How deeply the arrays and objects of a parsed JSON value nest (iteratively: the value
    may be nested as deeply as the parser allowed)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item)
    return deepest


class CleanInput:
    def __init__(
        self,
        app: ASGIApp,
        max_depth: int = MAX_DEPTH,
        max_url_bytes: int = MAX_URL_BYTES,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ) -> None:
        self.app = app
        self.max_depth = max_depth
        self.max_url_bytes = max_url_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.check_head(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        if headers.get(b"content-length", b"0") in (b"0", b"") and (
            b"transfer-encoding" not in headers
        ):
            await self.app(scope, receive, send)  # no body (HTTP/1.1: neither header)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its body arrived: nobody to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        refusal = self.check_body(scope, body, headers.get(b"content-type", b""))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: the disconnect, whenever it comes
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def check_head(self, scope: Scope) -> JSONResponse | None:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "replace")
        raw_path = raw_path.split(b"?", 1)[0]
        query: bytes = scope.get("query_string", b"")
        path: str = scope["path"]
        if len(raw_path) + len(query) > self.max_url_bytes:
            detail = f"URLs are limited to {self.max_url_bytes} bytes"
            return problem_response(414, "URI Too Long", detail)
        if not raw_path.isascii() or b"%" in raw_path or b"\x00" in raw_path:
            _, reason = _percent_decoded(raw_path, plus_is_space=False)
            if reason is not None:
                return invalid("path", reason, where="the path")  # no instance: it is the path
        found = _pairs_flaw(query, "query.", "query")
        if found is not None:
            return invalid(*found, instance=path)
        for name, value in scope.get("headers", []):
            if len(value) > self.max_header_bytes:
                detail = f"header values are limited to {self.max_header_bytes} bytes"
                return problem_response(
                    431, "Request Header Fields Too Large", detail, instance=path
                )
            if b"\x00" in value or b"\x00" in name:
                # Starlette reads header bytes as Latin-1, so only NUL can do harm (and only
                # when nothing parses HTTP in front of the service: uvicorn refuses it)
                field = "header" if b"\x00" in name else f"header.{name.decode('latin-1')}"
                return invalid(field, NUL, instance=path)
        return None

    def check_body(self, scope: Scope, body: bytes, content_type: bytes) -> JSONResponse | None:
        path: str = scope["path"]
        if b"\x00" in body:
            # no JSON or form body holds a raw NUL byte (JSON escapes it, forms encode it)
            return invalid("body", "contains a NUL byte", instance=path, where="the body")
        if content_type.split(b";")[0].strip().lower() == _FORM:
            found = _pairs_flaw(body, "", "body")
            return None if found is None else invalid(*found, instance=path)
        text, reason = _text(body)
        if text is None:
            return invalid("body", reason or NOT_UTF8, instance=path, where="the body")
        # brackets bound the depth, `\u` escapes are the only way to spell a flaw in valid
        # UTF-8: without either (nearly every body), nothing is parsed here
        deep = text.count("[") + text.count("{") > self.max_depth
        escaped = "\\u" in text
        if not (deep or escaped):
            return None
        too_deep = invalid(
            "body",
            f"nests deeper than {self.max_depth} levels",
            instance=path,
            where="the JSON body",
            kind="json_too_deep",
        )
        try:
            value = json.loads(text)
        except RecursionError:
            return too_deep  # deeper than the interpreter's recursion limit
        except ValueError:
            return None  # not JSON: the route's own parsing refuses it (422 or 400)
        if deep and nesting(value) > self.max_depth:
            return too_deep
        found = first_flaw(value) if escaped else None
        if found is None:
            return None
        field, reason = found
        if not field:
            return invalid("body", reason, instance=path, where="the body")
        return invalid(field, reason, instance=path, where=f"body field {field[:200]}")


def invalid(
    field: str,
    reason: str,
    *,
    instance: str | None = None,
    where: str | None = None,
    kind: str = "invalid_text",
) -> JSONResponse:
    """422 in the shape of FastAPI's validation errors (problems.field_errors): what is wrong
    in `detail`, and `errors` with field, message and type."""
    field = field[:200]
    return problem_response(
        422,
        "Invalid request",
        f"{where or field} {reason}",
        instance=instance,
        errors=[{"field": field, "message": reason, "type": kind}],
    )
