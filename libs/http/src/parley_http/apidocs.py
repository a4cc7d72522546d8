"""One API document for the whole gateway: each service's OpenAPI document merged (paths by
method; component schemas renamed `<service>_<Name>` where two services mean different things
by one name), and a plain HTML page of it. `docs/openapi.py` builds the merged document from
the services; the query gateway serves it at `/docs` and `/docs/openapi.json`."""

from __future__ import annotations

import copy
import html
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse

Document = dict[str, Any]
PACKAGED = "openapi.json"  # parley_http/openapi.json: the merged document, generated


class Clash(ValueError):
    """Two services answer the same method on the same path: the gateway routes it to one."""


def _rename_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        out = {k: _rename_refs(v, renames) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name in renames:
                out["$ref"] = f"#/components/schemas/{renames[name]}"
        return out
    if isinstance(node, list):
        return [_rename_refs(v, renames) for v in node]
    return node


def merge(documents: Mapping[str, Document], title: str = "Parley API") -> Document:
    """`documents`: service name -> its OpenAPI document."""
    merged: Document = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0"},
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {}},
        "tags": [],
    }
    schemas = merged["components"]["schemas"]
    for service, original in sorted(documents.items()):
        document = copy.deepcopy(original)
        own = document.get("components", {}).get("schemas", {})
        renames = {
            name: f"{service}_{name}"
            for name, schema in own.items()
            if name in schemas and schemas[name] != _rename_refs(schema, {})
        }
        document = _rename_refs(document, renames)
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            schemas[renames.get(name, name)] = schema
        merged["components"]["securitySchemes"].update(
            document.get("components", {}).get("securitySchemes", {})
        )
        for path, item in document.get("paths", {}).items():
            target = merged["paths"].setdefault(path, {})
            for method, operation in item.items():
                if method in target:
                    raise Clash(f"{method.upper()} {path} in two services")
                target[method] = {**operation, "x-parley-service": service}
        known = {t["name"] for t in merged["tags"]}
        merged["tags"] += [t for t in document.get("tags", []) if t.get("name") not in known]
    merged["paths"] = dict(sorted(merged["paths"].items()))
    merged["components"]["schemas"] = dict(sorted(schemas.items()))
    return merged


def page(document: Document) -> str:
    """Every operation: method, path, summary, the service behind it and its statuses."""
    rows = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            statuses = ", ".join(sorted(op.get("responses", {})))
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code>"
                f"</td><td>{html.escape(op.get('summary', ''))}</td>"
                f"<td>{html.escape(op.get('x-parley-service', ''))}</td><td>{statuses}</td></tr>"
            )
    title = html.escape(document["info"]["title"])
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<h1>{title}</h1><p>The machine-readable document: <a href='/docs/openapi.json'>"
        "/docs/openapi.json</a>. Errors are problem+json; their types: docs/problems.md."
        "</p><table><tr><th>method</th><th>path</th><th>what</th><th>service</th>"
        f"<th>statuses</th></tr>{''.join(rows)}</table></body></html>"
    )


def packaged() -> Document:
    document: Document = json.loads(
        (resources.files("parley_http") / PACKAGED).read_text(encoding="utf-8")
    )
    return document


def docs_router() -> APIRouter:
    """`/docs` (the page) and `/docs/openapi.json` (the merged document), for the gateway."""
    router = APIRouter(include_in_schema=False)
    document = packaged()
    text = page(document)

    @router.get("/docs")
    async def docs_page() -> HTMLResponse:
        return HTMLResponse(text)

    @router.get("/docs/openapi.json")
    async def docs_document() -> JSONResponse:
        return JSONResponse(document)

    return router
