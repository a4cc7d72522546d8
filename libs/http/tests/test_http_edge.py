"""problem+json on every error path, 413 for big bodies, consistency-token round trips."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from parley_http.consistency import ConsistencyToken, InvalidToken
from parley_http.limits import BodySizeLimit
from parley_http.problems import Problem, install_problem_handlers
from pydantic import BaseModel, Field


class Body(BaseModel):
    name: str = Field(min_length=1, max_length=10)
    age: int


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=100)

    @app.post("/things")
    async def create(body: Body) -> dict[str, str]:
        return {"name": body.name}

    @app.post("/conflict")
    async def conflict() -> None:
        raise Problem(409, "Conflict", "stream moved on", expected=1, actual=2)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return app


client = TestClient(make_app(), raise_server_exceptions=False)


def test_validation_errors_list_fields() -> None:
    response = client.post("/things", json={"name": "", "age": "x"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"name", "age"}


def test_malformed_json_is_4xx_problem() -> None:
    response = client.post(
        "/things", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_typed_problem_keeps_extensions() -> None:
    response = client.post("/conflict")
    assert response.status_code == 409
    assert response.json()["expected"] == 1


def test_unexpected_error_is_bare_500_without_internals() -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    assert "secret" not in response.text


def test_unknown_route_is_problem() -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_oversized_body_is_413() -> None:
    response = client.post(
        "/things", content=b"x" * 500, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["status"] == 413


def test_token_round_trip_and_garbage() -> None:
    token = ConsistencyToken("users", "u-1", 7, "u-1")
    assert ConsistencyToken.decode(token.sign("secret")) == token
    for garbage in ("", "abc", "eyJ0IjoyfQ", "!!!"):
        with pytest.raises(InvalidToken):
            ConsistencyToken.decode(garbage)


def test_token_with_text_no_store_takes_is_garbage() -> None:
    # sign() escapes them (ASCII JSON): a forged token can carry them into the read side
    cases = (("users", "u\x00", "u"), ("users", "\ud800", "u"), ("u\x00", "s", "u"))
    for context, stream, caller in (*cases, ("users", "s", "\x00")):
        forged = ConsistencyToken(context, stream, 1, caller).sign("secret")
        with pytest.raises(InvalidToken):
            ConsistencyToken.decode(forged)
        with pytest.raises(InvalidToken):
            ConsistencyToken.verify(forged, "secret", caller)
