"""Hostile input for every route: one catalogue of what a client can send, and a walk that
sends it to every operation of a FastAPI app (unit tests) or of an OpenAPI document (the
end-to-end tier, through nginx). The promise checked: bad input is a 4xx problem, never a 5xx.

The catalogue: text no store takes (NUL, lone surrogates, bytes that are not UTF-8), megabyte
strings (60 KiB in a URL: httpx sends no longer one), JSON nested too deeply, wrong types
(numbers for strings, objects for ids, operators for values...) and forged opaque tokens.
Values marked `hostile` must be refused before any handler runs: in a unit walk the app's
stores are stand-ins (`Boundary`, `EmptyReadModels`), and a hostile request that reaches one
fails the walk, as does any store call whose arguments hold a NUL or a lone surrogate or that
the driver could not encode.

The flaw check here is the tests' own (not parley_http.text): an independent oracle.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

MEGABYTE = 1 << 20
PROBLEM_JSON = "application/problem+json"
_FLAWED = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class Value:
    label: str
    value: Any
    hostile: bool  # must be refused before a handler runs


# -- the catalogue ------------------------------------------------------------------------------


def _deep(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def _deep_object(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"a": value}
    return value


# strings and other JSON values for one field of a JSON body (sent with ensure_ascii, so a
# NUL is `\u0000` and a surrogate `\ud800` on the wire, as a hostile client writes them)
FIELD_VALUES: tuple[Value, ...] = (
    Value("NUL", "nul\x00byte", hostile=True),
    Value("only NUL", "\x00", hostile=True),
    Value("lone high surrogate", "\ud800", hostile=True),
    Value("lone low surrogate", "x\udfffy", hostile=True),
    Value("surrogates reversed", "\ude00\ud83d", hostile=True),
    Value("megabyte", "x" * MEGABYTE, hostile=True),
    Value("deep list", _deep(64), hostile=True),
    Value("deep object", _deep_object(64), hostile=True),
    Value("null", None, hostile=False),
    Value("zero", 0, hostile=False),
    Value("negative", -1, hostile=False),
    Value("beyond int64", 2**64, hostile=False),
    Value("float", 1.5, hostile=False),
    Value("true", True, hostile=False),
    Value("empty", "", hostile=False),
    Value("blank", "   ", hostile=False),
    Value("list", ["x"], hostile=False),
    Value("empty list", [], hostile=False),
    Value("empty object", {}, hostile=False),
    Value("operator", {"$ne": None}, hostile=False),
    Value("regex operator", {"$regex": ".*"}, hostile=False),
    Value("quote", "' OR '1'='1", hostile=False),
    Value("right-to-left override", "\u202eevil", hostile=False),
    Value("emoji", "\U0001f600" * 8, hostile=False),
    Value("long", "y" * 5000, hostile=False),
)


def opaque(value: Any) -> str:
    """Parley's opaque tokens (cursors, consistency tokens) are URL-safe base64 of JSON: a
    forged one passes the edge as plain ASCII, and its decoder must refuse what it carries."""
    raw = json.dumps(value, ensure_ascii=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# forged opaque tokens: a NUL, a surrogate or a time out of range inside valid base64 JSON
FORGED: tuple[str, ...] = (
    opaque(["\x00", "\x00"]),
    opaque(["2026-11-24T10:00:00", "\ud800"]),
    opaque(["0001-01-01T00:00:00+14:00", "n1"]),
    opaque({"t": 10**20, "c": "c1", "s": 1}),
    opaque({"t": 1, "c": "\x00", "s": 1}),
    *(opaque({"t": 1, "c": c, "s": "\ud800", "v": 1}) for c in ("users", "chat", "notifications")),
)

# one path segment or query value, as it appears in the URL (percent-encoded)
URL_VALUES: tuple[Value, ...] = (
    Value("NUL", "%00", hostile=True),
    Value("inner NUL", "a%00b", hostile=True),
    Value("encoded high surrogate", "%ED%A0%80", hostile=True),
    Value("encoded low surrogate", "%ED%B0%80", hostile=True),
    Value("not UTF-8", "%FF%FE", hostile=True),
    Value("overlong NUL", "%C0%80", hostile=True),
    # httpx refuses URLs over 64 KiB: a megabyte cannot be sent there, this is the most
    Value("60 KiB", "x" * 60_000, hostile=True),
    Value("zero", "0", hostile=False),
    Value("negative", "-1", hostile=False),
    Value("beyond int64", "99999999999999999999", hostile=False),
    Value("huge float", "1e400", hostile=False),
    Value("null", "null", hostile=False),
    Value("true", "true", hostile=False),
    Value("brackets", "%5B%5D", hostile=False),
    Value("braces", "%7B%7D", hostile=False),
    Value("blank", "%20", hostile=False),
    Value("dots", "%2E%2E", hostile=False),
    Value("slash", "a%2Fb", hostile=False),
    Value("emoji", "%F0%9F%98%80", hostile=False),
    Value("right-to-left override", "%E2%80%AEevil", hostile=False),
    Value("quote", "%27%20OR%20%271%27%3D%271", hostile=False),
    Value("long", "z" * 3000, hostile=False),
    *(Value(f"forged token {i}", token, hostile=False) for i, token in enumerate(FORGED)),
)

# one header value (bytes: headers are Latin-1 on the wire)
HEADER_VALUES: tuple[Value, ...] = (
    Value("NUL", b"a\x00b", hostile=True),
    Value("megabyte", b"h" * MEGABYTE, hostile=True),
    Value("empty", b"", hostile=False),
    Value("latin-1", b"\xff\xfe\xe9", hostile=False),
    Value("brackets", b"[]", hostile=False),
    Value("negative", b"-1", hostile=False),
    Value("bare scheme", b"Bearer", hostile=False),
    Value("not a token", b"Bearer x.y.z", hostile=False),
    Value("long", b"k" * 4000, hostile=False),
    *(Value(f"forged token {i}", t.encode(), hostile=False) for i, t in enumerate(FORGED)),
)

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
# whole bodies: (label, raw bytes, content type)
BODIES: tuple[tuple[Value, str], ...] = (
    (Value("NUL escape", b'{"a": "\\u0000"}', hostile=True), JSON),
    (Value("surrogate escape", b'{"a": "\\udfff"}', hostile=True), JSON),
    (Value("NUL key", b'{"\\u0000": 1}', hostile=True), JSON),
    (Value("surrogate key", b'{"\\ud800": 1}', hostile=True), JSON),
    (Value("raw NUL", b'{"a": "\x00"}', hostile=True), JSON),
    (Value("encoded surrogate", b'{"a": "\xed\xa0\x80"}', hostile=True), JSON),
    (Value("not UTF-8", b"\xff\xfe{\x00}", hostile=True), JSON),
    (Value("deep brackets", b"[" * 20000, hostile=True), JSON),
    (Value("deep valid", json.dumps(_deep(200)).encode(), hostile=True), JSON),
    (Value("megabyte", b'{"a": "' + b"x" * MEGABYTE + b'"}', hostile=True), JSON),
    (Value("form NUL", b"token=%00&a=b", hostile=True), FORM),
    (Value("form surrogate", b"token=%ED%A0%80", hostile=True), FORM),
    (Value("NUL escape, no type", b'{"a": "\\u0000"}', hostile=True), ""),
    (Value("empty", b"", hostile=False), JSON),
    (Value("truncated", b"{", hostile=False), JSON),
    (Value("null", b"null", hostile=False), JSON),
    (Value("list", b"[]", hostile=False), JSON),
    (Value("string", b'"x"', hostile=False), JSON),
    (Value("number", b"1e400", hostile=False), JSON),
    (Value("unknown field", b'{"zzz": 1}', hostile=False), JSON),
    (Value("plain text", b"hello", hostile=False), "text/plain"),
    (Value("form", b"a=b", hostile=False), FORM),
)


# -- operations: what a route takes ------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # the template: /v1/users/{user_id}
    path_params: tuple[str, ...] = ()
    query: tuple[str, ...] = ()  # declared query parameters
    required_query: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()  # declared headers, lower case
    body: Mapping[str, Any] | None = None  # JSON schema of a JSON body; None: takes none
    secured: bool = False  # reads the Authorization header

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


def _collect(dependant: Any, found: dict[str, list[Any]]) -> bool:
    """Parameters of a FastAPI dependant and its sub-dependencies; True when one of them is a
    security scheme (the Authorization header)."""
    secured = False
    stack = [dependant]
    while stack:
        item = stack.pop()
        for kind in ("path", "query", "header"):
            found[kind].extend(getattr(item, f"{kind}_params", []))
        secured = secured or hasattr(getattr(item, "call", None), "scheme_name")
        stack.extend(getattr(item, "dependencies", []))
    return secured


def _alias(model_field: Any) -> str:
    return str(getattr(model_field, "alias", None) or model_field.name)


def _required(model_field: Any) -> bool:
    info = getattr(model_field, "field_info", None)
    return bool(info is not None and info.is_required())


def _body_schema(route: Any) -> Mapping[str, Any] | None:
    body_field = getattr(route, "body_field", None)
    if body_field is not None:
        annotation = getattr(getattr(body_field, "field_info", None), "annotation", None)
        schema = getattr(annotation, "model_json_schema", None)
        if schema is not None:
            result: Mapping[str, Any] = schema()
            return result
        return {"type": "object", "properties": {}}
    extra = (getattr(route, "openapi_extra", None) or {}).get("requestBody", {})
    content = extra.get("content", {}).get(JSON)
    return None if content is None else content.get("schema", {})


def _routes(app: Any) -> list[Any]:
    """The app's routes with those of included routers flattened (FastAPI keeps an included
    router as one lazy entry of `app.routes` since 0.16x)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # an older FastAPI: included routes are copied into app.routes
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def operations_from_app(app: Any) -> list[Operation]:
    """Every HTTP operation of a FastAPI app, the ones hidden from its OpenAPI document too
    (internal endpoints, /metrics, /docs...)."""
    operations = []
    for route in _routes(app):
        methods = getattr(route, "methods", None)
        if not methods:
            continue  # a mount or a WebSocket route
        found: dict[str, list[Any]] = {"path": [], "query": [], "header": []}
        dependant = getattr(route, "dependant", None)
        secured = _collect(dependant, found) if dependant is not None else False
        path_params = tuple(dict.fromkeys(_alias(f) for f in found["path"])) or tuple(
            getattr(route, "param_convertors", {})
        )
        headers = tuple(dict.fromkeys(_alias(f).lower() for f in found["header"]))
        for method in sorted(methods):
            if method == "HEAD" and "GET" in methods:
                continue
            operations.append(
                Operation(
                    method=method,
                    path=route.path,
                    path_params=path_params,
                    query=tuple(dict.fromkeys(_alias(f) for f in found["query"])),
                    required_query=tuple(_alias(f) for f in found["query"] if _required(f)),
                    headers=headers,
                    body=_body_schema(route),
                    secured=secured or "authorization" in headers,
                )
            )
    return operations


def _resolve(schema: Any, document: Mapping[str, Any]) -> Any:
    while isinstance(schema, Mapping) and "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def operations_from_openapi(document: Mapping[str, Any]) -> list[Operation]:
    """Every operation an OpenAPI document lists (what a service publishes)."""
    operations = []
    for path, item in document.get("paths", {}).items():
        for method, spec in item.items():
            if method.upper() not in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
                continue
            params = [_resolve(p, document) for p in spec.get("parameters", [])]
            named = {kind: [p for p in params if p.get("in") == kind] for kind in ("path", "query")}
            headers = tuple(p["name"].lower() for p in params if p.get("in") == "header")
            body = spec.get("requestBody", {}).get("content", {}).get(JSON)
            schema = None
            if body is not None:
                schema = _resolve(body.get("schema", {}), document)
                properties = {
                    k: _resolve(v, document) for k, v in schema.get("properties", {}).items()
                }
                schema = {**schema, "properties": properties}
            operations.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    path_params=tuple(p["name"] for p in named["path"]),
                    query=tuple(p["name"] for p in named["query"]),
                    required_query=tuple(p["name"] for p in named["query"] if p.get("required")),
                    headers=headers,
                    body=schema,
                    secured=bool(spec.get("security") or document.get("security"))
                    or "authorization" in headers,
                )
            )
    return operations


# -- requests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    label: str
    method: str
    url: str
    headers: Mapping[str, bytes]
    content: bytes | None
    hostile: bool


def sample(schema: Any, name: str, samples: Mapping[str, Any]) -> Any:
    """A plausible value for a schema: `samples[name]` when given, else from the schema."""
    if name in samples:
        return samples[name]
    if not isinstance(schema, Mapping):
        return "x"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return sample(options[0] if options else {}, name, samples)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "string":
        return str(uuid.uuid4()) if schema.get("format") == "uuid" else "x"
    if kind == "integer":
        return schema.get("minimum", 1)
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    if kind == "array":
        return [sample(schema.get("items", {}), name, samples)] * schema.get("minItems", 0)
    return {}


TEXT_FLAWS = {"NUL": "\x00", "lone surrogate": "\ud800"}
URL_FLAWS = {"NUL": "%00", "encoded surrogate": "%ED%A0%80"}


def inside(plausible: str, flaws: Mapping[str, str]) -> tuple[Value, ...]:
    """A plausible value with a flaw after its first character: an address that passes
    every pattern but for a NUL ("n\x00obody@example.test" was login's 500)."""
    return tuple(
        Value(f"{label} inside a plausible value", plausible[:1] + flaw + plausible[1:], True)
        for label, flaw in flaws.items()
    )


def _json(value: Any) -> bytes:
    # ensure_ascii: NUL and surrogates travel as escapes, the way a hostile client sends them
    return json.dumps(value, ensure_ascii=True).encode()


def probes(
    operation: Operation,
    headers: Mapping[str, str],
    samples: Mapping[str, Any] = {},
    *,
    full_bodies: bool = True,
    wrong_headers: bool = True,
    over_the_wire: bool = False,
    only_hostile: bool = False,
    baseline_only: bool = False,
) -> Iterator[Probe]:
    """The requests of the walk for one operation: each varies one place (a path parameter, a
    query parameter, a header, a body field, the whole body) and keeps the rest plausible.

    `full_bodies`: the other fields of a body get sample values (the variation reaches as far
    as it can); else they are left out (a request with a wrong type then never runs a command:
    the end-to-end walk must not sign anyone out or count failed logins). `wrong_headers`:
    send wrong values of headers too (else only hostile ones, which never reach a handler).
    `over_the_wire`: leave out what no HTTP client can send (a NUL in a header).
    `only_hostile`: no wrong types and no baseline, so with `full_bodies` every request is
    plausible but for one hostile value, and none may run (a NUL in an otherwise valid login
    was the 500 of the issue). `baseline_only`: just the plausible request, nothing varied."""
    path_values = {
        p: quote(str(samples.get(p, uuid.uuid4())), safe="@") for p in operation.path_params
    }
    base_query = {q: quote(str(samples.get(q, "1")), safe="") for q in operation.required_query}
    schema = operation.body or {}
    properties: Mapping[str, Any] = schema.get("properties", {})
    plausible = {k: sample(v, k, samples) for k, v in properties.items()}
    base_body = plausible if full_bodies else {}
    base_headers = {k: v.encode() for k, v in headers.items()}
    if operation.body is not None:
        base_headers["content-type"] = JSON.encode()
    base_content = _json(base_body) if operation.body is not None else None

    def url(path: Mapping[str, str] = {}, query: Mapping[str, str] = {}) -> str:
        template = operation.path
        for name, value in {**path_values, **path}.items():
            template = template.replace("{" + name + "}", value)
        pairs = {**base_query, **query}
        return template + ("?" + "&".join(f"{k}={v}" for k, v in pairs.items()) if pairs else "")

    def probe(where: str, value: Value, **changes: Any) -> Probe:
        return Probe(
            label=f"{operation.name} {where}={value.label}",
            method=operation.method,
            url=changes.get("url", url()),
            headers=changes.get("headers", base_headers),
            content=changes.get("content", base_content),
            hostile=value.hostile,
        )

    if baseline_only:
        yield probe("nothing", Value("baseline", None, hostile=False))
        return

    def every() -> Iterator[Probe]:
        if operation.path_params or operation.query or operation.body is not None:
            # nothing varied: how far a plausible request gets (operations without parameters,
            # /metrics and the like, only get the hostile probes: a plain one would just run)
            yield probe("nothing", Value("baseline", None, hostile=False))
        for name in operation.path_params:
            for value in (*URL_VALUES, *inside(path_values[name], URL_FLAWS)):
                yield probe(f"path.{name}", value, url=url(path={name: value.value}))
        for name in (*operation.query, "zzz"):
            declared = name in operation.query
            near = quote(str(samples.get(name, "1")), safe="")
            for value in (*URL_VALUES, *inside(near, URL_FLAWS)):
                if declared or value.hostile:  # an unknown parameter is ignored unless refused
                    yield probe(f"query.{name}", value, url=url(query={name: value.value}))
        for value in URL_VALUES:
            if value.hostile and len(value.value) < 100:  # a flawed parameter name
                yield probe("query name", value, url=url(query={value.value: "1"}))
        names = set(operation.headers) | ({"authorization"} if operation.secured else set())
        for name in (*sorted(names), "x-hostile"):
            for value in HEADER_VALUES:
                if over_the_wire and b"\x00" in value.value:
                    continue  # HTTP clients refuse it, and so does every server's parser
                if not value.hostile and (name not in names or not wrong_headers):
                    continue
                yield probe(f"header.{name}", value, headers={**base_headers, name: value.value})
        if operation.body is not None:
            for name in properties:
                near = plausible[name]
                flawed = inside(near, TEXT_FLAWS) if isinstance(near, str) else ()
                for value in (*FIELD_VALUES, *flawed):
                    content = _json({**base_body, name: value.value})
                    yield probe(f"body.{name}", value, content=content)
        for value, content_type in BODIES:
            if operation.body is None and not value.hostile:
                continue  # a body the route ignores: the request would just run
            typed = {**base_headers, "content-type": content_type.encode()}
            if not content_type:
                typed.pop("content-type")
            yield probe("body", value, headers=typed, content=value.value)

    yield from (p for p in every() if p.hostile or not only_hostile)


# -- the boundary: stores a unit walk must not reach with hostile input ----------------------


class BoundaryReached(BaseException):
    """A request got past the HTTP layer to a store. A BaseException, so no `except
    Exception` of the code under test turns it into an answer: the walk sees it."""


@dataclass
class BoundaryLog:
    """Every use of a Boundary: (what was used, the flaw of its arguments or None)."""

    uses: list[tuple[str, str | None]] = field(default_factory=list)

    def flawed(self) -> list[tuple[str, str | None]]:
        return [use for use in self.uses if use[1] is not None]


def _flaw_in(value: Any, depth: int = 0) -> str | None:
    if depth > 20:
        return None
    if isinstance(value, str):
        found = _FLAWED.search(value)
        return None if found is None else repr(found.group())
    if isinstance(value, Mapping):
        value = [*value.keys(), *value.values()]
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = [getattr(value, f.name) for f in dataclasses.fields(value)]
    if isinstance(value, list | tuple | set | frozenset):
        for item in value:
            found_in = _flaw_in(item, depth + 1)
            if found_in is not None:
                return found_in
    return None


# calls that open a scope rather than do work: `async with pool.acquire() as conn`, `async with
# conn.transaction()`; the work inside (conn.fetch(sql, *args)) is where arguments are judged
OPENERS = frozenset({"acquire", "transaction"})


class Boundary:
    """Stands in for a store or driver (a pool, a database, a repository...) in a unit walk.
    Attributes and subscripts are more Boundaries, `acquire()` and `transaction()` open a
    Boundary scope (the connection), and any other call, await, iteration or `async with`
    records the use, with the first NUL or lone surrogate among its arguments, and raises
    BoundaryReached."""

    def __init__(self, name: str, log: BoundaryLog, *, opened: bool = False) -> None:
        self._name = name
        self._log = log
        self._opened = opened

    def __getattr__(self, attribute: str) -> Boundary:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return Boundary(f"{self._name}.{attribute}", self._log)

    def __getitem__(self, key: Any) -> Boundary:
        flaw = _flaw_in(key)
        if flaw is not None:  # a collection named by the client
            self._log.uses.append((f"{self._name}[...]", flaw))
        return Boundary(f"{self._name}[{key!r}]", self._log)

    def _reached(self, *arguments: Any) -> BoundaryReached:
        self._log.uses.append((self._name, _flaw_in(list(arguments))))
        return BoundaryReached(self._name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._name.rsplit(".", 1)[-1] in OPENERS:
            return Boundary(f"{self._name}()", self._log, opened=True)
        raise self._reached(*args, kwargs)

    def __await__(self) -> Any:
        if self._opened:  # conn = await pool.acquire()
            return self
            yield  # pragma: no cover (makes this a generator)
        raise self._reached()

    async def __aenter__(self) -> Any:
        if self._opened:
            return Boundary(self._name.removesuffix("()"), self._log)
        raise self._reached()

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __iter__(self) -> Any:
        raise self._reached()

    def __aiter__(self) -> Any:
        raise self._reached()

    def __repr__(self) -> str:
        return f"Boundary({self._name})"


def _encoding_flaw(arguments: Any) -> str | None:
    """Why the driver could not send these query arguments (what bson.encode raises on a
    lone surrogate, a NUL in a key, an integer beyond 64 bits), or a flawed string in them."""
    from bson import encode  # pymongo's: encoded as the driver encodes them

    found = _flaw_in(arguments)
    if found is not None:
        return found
    documents = [a for a in arguments if isinstance(a, Mapping)]
    documents += [d for a in arguments if isinstance(a, list) for d in a if isinstance(d, Mapping)]
    for document in documents:
        try:
            encode(document)
        except Exception as error:  # whatever the encoder refuses
            return repr(error)
    return None


class EmptyReadModels:
    """An in-memory stand-in for the query gateway's MongoDB database: every projection's
    alias names generation 1, and every collection is empty (reads find nothing, lists are
    empty pages, counts 0). Each call is logged in the BoundaryLog as a use, with the reason
    the real driver or store would refuse its arguments (a flawed string, what bson.encode
    raises), so a walk can follow a request to the end of its route and still see every
    filter it built, a forged cursor's included."""

    def __init__(self, log: BoundaryLog, name: str = "parley") -> None:
        self.name = name
        self._log = log

    def __getitem__(self, collection: str) -> _EmptyCollection:
        return _EmptyCollection(f"mongo.{collection}", self._log)


class _EmptyCursor:
    def sort(self, *args: Any, **kwargs: Any) -> _EmptyCursor:
        return self

    def limit(self, count: int) -> _EmptyCursor:
        return self

    async def to_list(self, length: int | None = None) -> list[Any]:
        return []

    def __aiter__(self) -> _EmptyCursor:
        return self

    async def __anext__(self) -> Any:
        raise StopAsyncIteration


class _EmptyCollection:
    def __init__(self, name: str, log: BoundaryLog) -> None:
        self.name = name.removeprefix("mongo.")
        self._qualified = name
        self._log = log

    def _use(self, method: str, *arguments: Any) -> None:
        self._log.uses.append((f"{self._qualified}.{method}", _encoding_flaw(list(arguments))))

    async def find_one(self, flt: Any = None, projection: Any = None, **kwargs: Any) -> Any:
        self._use("find_one", flt, projection)
        if self.name == "_aliases" and isinstance(flt, Mapping):
            return {"_id": flt.get("_id"), "active": 1, "latest": 1}
        return None

    def find(self, flt: Any = None, projection: Any = None, **kwargs: Any) -> _EmptyCursor:
        self._use("find", flt, projection)
        return _EmptyCursor()

    async def count_documents(self, flt: Any, **kwargs: Any) -> int:
        self._use("count_documents", flt)
        return 0

    async def aggregate(self, pipeline: Any, **kwargs: Any) -> _EmptyCursor:
        self._use("aggregate", pipeline)
        return _EmptyCursor()

    async def insert_one(self, document: Any, **kwargs: Any) -> None:
        self._use("insert_one", document)


# -- the walk ----------------------------------------------------------------------------------


@dataclass
class Report:
    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    reached: int = 0  # requests that got to a Boundary (unit walks)
    failures: list[str] = field(default_factory=list)
    not_problem: list[str] = field(default_factory=list)  # 4xx without problem+json
    # 503 + Retry-After while the plain request of the same operation got one too: the
    # service was unavailable (a store timing out), which says nothing about the input
    unavailable: list[str] = field(default_factory=list)

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def summary(self) -> str:
        by_class: dict[str, int] = {}
        for status, count in sorted(self.statuses.items()):
            by_class[f"{status // 100}xx"] = by_class.get(f"{status // 100}xx", 0) + count
        return (
            f"{self.sent} requests, {by_class}, {self.reached} reached a store,"
            f" {len(self.unavailable)} while the route was unavailable"
        )


def judge(probe: Probe, response: httpx.Response) -> str | None:
    """What is wrong with the answer to a probe, or None."""
    if response.status_code >= 500:
        return f"{probe.label}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        kind = response.headers.get("content-type", "")
        if not kind.startswith(PROBLEM_JSON):
            return f"{probe.label}: {response.status_code} with content-type {kind!r}"
    return None


async def walk(
    client: httpx.AsyncClient,
    operations: Iterable[Operation],
    headers: Mapping[str, str] = {},
    samples: Mapping[str, Any] = {},
    *,
    boundary: BoundaryLog | None = None,
    problem_json: bool = True,
    concurrency: int = 1,
    **options: bool,
) -> Report:
    """Send every probe of every operation. `report.failures` lists each request answered
    with a 5xx (but a 503 + Retry-After that the operation's plain request gets as well: the
    route was unavailable, see `report.unavailable`), each 4xx that is not problem+json (when
    `problem_json`; else they are listed in `report.not_problem`), each hostile request that
    reached a store stand-in, and each stand-in use whose arguments held a flawed string
    (background work included: checked once more at the end). `concurrency` > 1 only
    without a boundary (uses are told apart by order)."""
    report = Report()
    checked = 0

    def check_uses(label: str) -> None:
        nonlocal checked
        if boundary is None:
            return
        for what, flaw in boundary.uses[checked:]:
            if flaw is not None:
                report.failures.append(f"{label}: {what} got {flaw}")
        checked = len(boundary.uses)

    async def unavailable_anyway(operation: Operation) -> bool:
        """Whether the plain request of `operation` gets a 503 + Retry-After now too."""
        plain = next(probes(operation, headers, samples, baseline_only=True, **options))
        answer = await client.request(
            plain.method,
            plain.url,
            headers={k.encode(): v for k, v in plain.headers.items()},
            content=plain.content,
        )
        return answer.status_code == 503 and "retry-after" in answer.headers

    async def send(operation: Operation, probe: Probe) -> None:
        report.sent += 1
        before = checked
        try:
            response = await client.request(
                probe.method,
                probe.url,
                headers={k.encode(): v for k, v in probe.headers.items()},
                content=probe.content,
            )
        except BoundaryReached:
            return  # counted below: the use is logged
        except httpx.TransportError:
            raise  # the server or the client is broken, not the answer: stop the walk
        except Exception as error:  # an in-process app's unhandled error (its 500)
            report.failures.append(f"{probe.label}: raised {error!r}")
            return
        finally:
            if boundary is not None and len(boundary.uses) > before:
                # a stand-in that answers (EmptyReadModels) does not raise: its use is the sign
                report.reached += 1
                if probe.hostile:
                    what = boundary.uses[before][0]
                    report.failures.append(f"{probe.label}: reached {what} (hostile input)")
            check_uses(probe.label)
        report.count(response.status_code)
        failure = judge(probe, response)
        if failure is None:
            return
        if (
            response.status_code == 503
            and "retry-after" in response.headers
            and await unavailable_anyway(operation)
        ):
            report.unavailable.append(failure)
            return
        if response.status_code >= 500 or problem_json:
            report.failures.append(failure)
        else:
            report.not_problem.append(failure)

    # probes are made as they are sent: megabyte values are not all held at once
    pending = ((op, p) for op in operations for p in probes(op, headers, samples, **options))

    async def worker() -> None:
        for operation, probe in pending:
            await send(operation, probe)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await asyncio.sleep(0)  # let background work started by the last request run
    check_uses("background work")
    return report
