"""The edge refuses hostile input with a 4xx problem before a route runs: NUL and lone
surrogates anywhere (path, query, headers, JSON strings and keys, form fields), bytes that are
not UTF-8, JSON nested too deeply, URLs and headers too long. Clean input passes untouched."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Header, Request
from parley_http.edge import MAX_DEPTH, install_edge, nesting
from parley_http.text import NUL, SURROGATE, first_flaw, flaw
from pydantic import BaseModel

REACHED: list[str] = []  # what the routes were called with


class Body(BaseModel):
    name: str
    tags: list[str] = []
    extra: dict[str, Any] = {}


def make_app() -> FastAPI:
    app = FastAPI()
    install_edge(app)  # 64 KiB bodies

    @app.get("/things/{thing_id}")
    async def read(thing_id: str, q: str | None = None) -> dict[str, Any]:
        REACHED.append(thing_id)
        return {"id": thing_id, "q": q}

    @app.post("/things")
    async def create(body: Body, key: str | None = Header(None, alias="Idempotency-Key")) -> Any:
        REACHED.append(body.name)
        return {"name": body.name, "key": key}

    @app.post("/form")
    async def form(request: Request) -> dict[str, Any]:
        REACHED.append("form")
        return {"raw": (await request.body()).decode()}

    return app


@pytest.fixture
async def client() -> Any:
    REACHED.clear()
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        yield http


def refused(response: httpx.Response, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert not REACHED, "the route ran"
    body: dict[str, Any] = response.json()
    return body


def post_json(client: httpx.AsyncClient, raw: bytes, **headers: str | bytes) -> Any:
    return client.post(
        "/things", content=raw, headers={"content-type": b"application/json", **headers}
    )


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/things/a%00b", "path"),
        ("/things/%ED%A0%80", "path"),  # a lone surrogate, UTF-8-encoded the only way it can be
        ("/things/%FF", "path"),
        ("/things/%C0%80", "path"),  # an overlong NUL
        ("/things/x?q=%00", "query.q"),
        ("/things/x?q=%ED%B0%80", "query.q"),
        ("/things/x?q=ok&other=a%00", "query.other"),
        ("/things/x?%00=1", "query"),
        ("/things/x?q=a+%00", "query.q"),
    ],
)
async def test_flawed_urls_are_422(client: httpx.AsyncClient, url: str, field: str) -> None:
    problem = refused(await client.get(url))
    assert problem["errors"][0]["field"] == field
    assert problem["errors"][0]["type"] == "invalid_text"
    assert field.split(".")[0] in problem["detail"] or "path" in problem["detail"]


async def test_a_flawed_path_is_not_echoed(client: httpx.AsyncClient) -> None:
    problem = refused(await client.get("/things/%00"))
    assert "instance" not in problem


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        (b'{"name": "a\\u0000b"}', "name", NUL),
        (b'{"name": "\\ud800"}', "name", SURROGATE),
        (b'{"name": "\\udc00\\ud800"}', "name", SURROGATE),
        (b'{"name": "x", "tags": ["ok", "\\u0000"]}', "tags.1", NUL),
        (b'{"name": "x", "extra": {"a": {"b": "\\udfff"}}}', "extra.a.b", SURROGATE),
        (b'{"name": "x", "\\u0000": 1}', "body", f"has a key that {NUL}"),
        (b'{"name": "x", "extra": {"\\ud800": 1}}', "extra", f"has a key that {SURROGATE}"),
        (b'"\\u0000"', "body", NUL),
    ],
)
async def test_flawed_json_strings_are_422(
    client: httpx.AsyncClient, raw: bytes, field: str, message: str
) -> None:
    problem = refused(await post_json(client, raw))
    assert problem["errors"] == [{"field": field, "message": message, "type": "invalid_text"}]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "\x00"}',  # a raw NUL byte (invalid JSON anyway)
        b'{"name": "\xed\xa0\x80"}',  # a UTF-8-encoded surrogate
        b'{"name": "\xff"}',
        b'\xff\xfe{\x00"\x00}\x00',  # UTF-16
    ],
)
async def test_bodies_that_are_not_utf8_text_are_422(client: httpx.AsyncClient, raw: bytes) -> None:
    problem = refused(await post_json(client, raw))
    assert problem["errors"][0]["field"] == "body"


async def test_a_json_body_without_content_type_is_checked_too(client: httpx.AsyncClient) -> None:
    refused(await client.post("/things", content=b'{"name": "\\u0000"}'))


async def test_form_fields_are_checked(client: httpx.AsyncClient) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    problem = refused(await client.post("/form", content=b"token=%00&a=b", headers=form))
    assert problem["errors"][0]["field"] == "token"
    refused(await client.post("/form", content=b"token=%ED%A0%80", headers=form))
    ok = await client.post("/form", content=b"token=a%2Bb+c&x=%C3%A9", headers=form)
    assert ok.status_code == 200
    assert ok.json()["raw"] == "token=a%2Bb+c&x=%C3%A9"  # replayed unchanged


def nested(depth: int, bottom: Any = 1) -> Any:
    for _ in range(depth):
        bottom = [bottom]
    return bottom


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 20_000,  # beyond the interpreter's recursion limit: no parser may recurse
        json.dumps({"name": "x", "extra": {"a": nested(MAX_DEPTH)}}).encode(),
        json.dumps([{"a": {"b": [1]}}] * 10 + [nested(MAX_DEPTH + 1)]).encode(),
        b"[" * 5000 + b"1" + b"]" * 5000,  # valid, and deeper than the recursion limit
    ],
)
async def test_deep_json_is_422(client: httpx.AsyncClient, raw: bytes) -> None:
    problem = refused(await post_json(client, raw))
    assert problem["errors"][0]["type"] == "json_too_deep"
    assert str(MAX_DEPTH) in problem["detail"]


async def test_brackets_inside_strings_are_not_nesting(client: httpx.AsyncClient) -> None:
    raw = json.dumps({"name": "[" * 100 + "{" * 100}).encode()
    response = await post_json(client, raw)
    assert response.status_code == 200, response.text


async def test_wide_json_is_not_deep(client: httpx.AsyncClient) -> None:
    raw = json.dumps({"name": "x", "tags": [], "extra": {str(i): [i] for i in range(200)}})
    response = await post_json(client, raw.encode())
    assert response.status_code == 200, response.text


async def test_clean_text_passes_unchanged(client: httpx.AsyncClient) -> None:
    # astral characters as escaped pairs, a literal backslash-u, accents, RTL marks, emoji
    raw = b'{"name": "\\ud83d\\ude00 \\\\u0000 \xc3\xa9\xe2\x80\xae \xf0\x9f\x98\x80"}'
    response = await post_json(client, raw, **{"Idempotency-Key": b"k\xe9"})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "\U0001f600 \\u0000 é\u202e \U0001f600"
    read = await client.get("/things/h%C3%A9?q=%F0%9F%98%80+x")
    assert read.json() == {"id": "hé", "q": "\U0001f600 x"}


async def test_header_values(client: httpx.AsyncClient) -> None:
    problem = refused(await client.get("/things/x", headers={"x-anything": b"a\x00b"}))
    assert problem["errors"][0]["field"] == "header.x-anything"
    refused(await client.get("/things/x", headers={"x-big": "h" * 9000}), status=431)


async def test_long_urls_are_414(client: httpx.AsyncClient) -> None:
    refused(await client.get("/things/" + "x" * 9000), status=414)
    refused(await client.get("/things/x?q=" + "x" * 9000), status=414)


async def test_oversized_bodies_are_still_413(client: httpx.AsyncClient) -> None:
    raw = json.dumps({"name": "\x00" + "x" * 70_000}).encode()
    refused(await post_json(client, raw), status=413)


async def test_wrong_types_are_left_to_validation(client: httpx.AsyncClient) -> None:
    for raw in (b"[]", b"null", b'{"name": 1}', b'{"name": {"$ne": null}}', b"{"):
        response = await post_json(client, raw)
        assert response.status_code == 422, raw
        assert response.headers["content-type"] == "application/problem+json"


def test_flaw() -> None:
    assert flaw("plain") is None
    assert flaw("\U0001f600 é") is None
    assert flaw("a\x00") == NUL
    assert flaw("\ud800") == SURROGATE
    assert flaw("\udfff") == SURROGATE


def test_first_flaw_walks_every_string() -> None:
    assert first_flaw({"a": ["x", {"b": "ok"}]}) is None
    assert first_flaw({"a": ["x", {"b": "\x00"}]}) == ("a.1.b", NUL)
    assert first_flaw("\ud800") == ("", SURROGATE)
    assert first_flaw({"a": 1, "b": "\x00", "c": "\ud800"}) == ("b", NUL)  # document order
    deep = nested(5000, "\x00")  # deeper than the recursion limit: iterative
    assert first_flaw(deep) == (".".join(["0"] * 5000), NUL)


def test_nesting() -> None:
    assert nesting("x") == 0
    assert nesting([]) == 1
    assert nesting({"a": [{"b": []}]}) == 4
    assert nesting(nested(5000, [])) == 5001
