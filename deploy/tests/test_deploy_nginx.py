"""deploy/nginx: the routing file the local cluster, docker-compose and Kubernetes share.
Every route reaches an upstream compose.conf declares (docker-compose's and the Kubernetes
gateway's server block; the local cluster's names are checked in test_deploy_local_parity),
paths land where DESIGN.md says, a location that sets proxy headers repeats the server's, the
realtime gateway's streams are unbuffered and long-lived, and nginx accepts the whole thing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_workspace import upstreams
from nginx_conf import (
    INCLUDE_DIR,
    NGINX,
    RESOLVE_SINCE,
    Directive,
    headers,
    locations,
    maps,
    proxied_upstream,
    read,
    seconds,
    version,
)

ROUTES = read("routes.conf")
SERVER_LEVEL = [d for d in ROUTES if d.name != "location"]
METHOD_MAPS = maps(read("methods.conf"))


def route(uri: str) -> Directive:
    """The location nginx picks for `uri`: an exact match; else the longest prefix if it is
    `^~`; else the first regex in file order; else the longest prefix."""
    exact, prefixes, regexes = {}, {}, []
    for key, location in locations(ROUTES).items():
        modifier, _, path = key.rpartition(" ")
        if modifier == "=":
            exact[path] = location
        elif modifier in ("~", "~*"):
            regexes.append((re.compile(path, re.IGNORECASE if modifier == "~*" else 0), location))
        else:
            prefixes[path] = (modifier, location)
    if uri in exact:
        return exact[uri]
    matching = [path for path in prefixes if uri.startswith(path)]
    longest = max(matching, key=len) if matching else None
    if longest is not None and prefixes[longest][0] == "^~":
        return prefixes[longest][1]
    for pattern, location in regexes:
        if pattern.search(uri):
            return location
    assert longest is not None, f"no location for {uri}"
    return prefixes[longest][1]


def upstream_names(location: Directive) -> set[str]:
    """The upstreams a location may proxy to (a method map's every value)."""
    name = proxied_upstream(location)
    if name is None:
        return set()
    if name.startswith("$"):
        assert name in METHOD_MAPS, f"{name} is no map of methods.conf"
        return set(METHOD_MAPS[name].values())
    return {name}


def test_every_route_reaches_a_declared_upstream() -> None:
    declared = set(upstreams((NGINX / "compose.conf").read_text()))
    for key, location in locations(ROUTES).items():
        missing = upstream_names(location) - declared
        assert not missing, f"location {key}: no upstream {sorted(missing)} in compose.conf"


@pytest.mark.parametrize(
    ("method", "uri", "upstream"),
    [
        ("GET", "/v1/stream", "realtime"),
        ("POST", "/v1/stream/tickets", "realtime"),
        ("GET", "/v1/ws", "realtime"),
        ("POST", "/v1/conversations/c1/typing", "realtime"),
        ("GET", "/v1/users/u1/presence", "realtime"),
        ("GET", "/openapi/realtime.json", "realtime"),
        # the prefixes the realtime routes sit under keep their own routing
        ("GET", "/v1/conversations/c1", "query"),
        ("POST", "/v1/conversations/c1/messages", "chat_cmd"),
        ("GET", "/v1/conversations/c1/events", "chat_cmd"),
        ("GET", "/v1/conversations/c1/messages/m1/history", "query"),
        ("GET", "/v1/reports", "query"),
        ("POST", "/v1/reports/r1/resolve", "chat_cmd"),
        ("GET", "/v1/users/u1", "query"),
        ("PATCH", "/v1/users/u1", "users_cmd"),
        ("GET", "/v1/users/u1/state", "users_cmd"),
        ("POST", "/v1/auth/login", "auth_cmd"),
    ],
)
def test_paths_reach_their_owner(method: str, uri: str, upstream: str) -> None:
    location = route(uri)
    name = proxied_upstream(location)
    assert name is not None, f"{uri} is answered by nginx itself"
    if name.startswith("$"):
        table = METHOD_MAPS[name]
        name = table.get(method, table["default"])
    assert name == upstream, f"{method} {uri} -> {name}, expected {upstream}"


def test_locations_that_set_proxy_headers_repeat_the_server_ones() -> None:
    # nginx: a level with any proxy_set_header inherits none from the levels around it
    common = headers(SERVER_LEVEL)
    assert {"host", "x-forwarded-for", "x-request-id", "traceparent"} <= common.keys()
    for key, location in locations(ROUTES).items():
        own = headers(location.block or [])
        if own and (missing := sorted(common.keys() - own.keys())):
            pytest.fail(f"location {key} sets proxy headers but drops {missing}")


def error_pages(directives: list[Directive]) -> dict[str, str]:
    """error_page CODE... [=] TARGET -> {code: target} at one level."""
    pages: dict[str, str] = {}
    for d in directives:
        if d.name == "error_page":
            *codes, target = [arg for arg in d.args if not arg.startswith("=")]
            pages.update(dict.fromkeys(codes, target))
    return pages


def proxying_levels(
    directives: list[Directive], inherited: dict[str, str], path: str
) -> list[tuple[str, dict[str, str]]]:
    """(location path, its effective error pages) for every location, nested ones too, that
    proxies; nginx: a level with any error_page inherits none from the levels around it."""
    found = []
    for key, location in locations(directives).items():
        block = location.block or []
        effective = error_pages(block) or inherited
        if proxied_upstream(location) is not None:
            found.append((f"{path}{key}", effective))
        found.extend(proxying_levels(block, effective, f"{path}{key} > "))
    return found


def test_every_proxied_location_answers_an_unreachable_service_as_a_problem() -> None:
    # a dead or restarting replica's 502/504 must reach the client as the 503 problem+json
    # that clients retry, never as nginx's HTML error page
    server = error_pages(SERVER_LEVEL)
    assert {code: server.get(code) for code in ("502", "503", "504")} == dict.fromkeys(
        ("502", "503", "504"), "@unavailable"
    )
    for key, pages in proxying_levels(ROUTES, server, ""):
        for code in ("502", "503", "504"):
            assert pages.get(code) == "@unavailable", f"location {key}: {code} is not mapped"


def test_realtime_streams_are_unbuffered_long_lived_and_upgraded() -> None:
    found = locations(ROUTES)
    for key in ("/v1/stream", "= /v1/ws"):
        location = found[key]
        assert proxied_upstream(location) == "realtime", key
        settings = {d.name: d.args for d in location.block or []}
        assert settings.get("proxy_http_version") == ["1.1"], key
        assert settings.get("proxy_buffering") == ["off"], f"{key}: responses must not be buffered"
        for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
            assert seconds(settings[timeout][0]) >= 3600, f"{key}: {timeout}"
    # SSE: keep-alive upstream connections (no `Connection: close`)
    assert headers(found["/v1/stream"].block or [])["connection"] == ""
    websocket = headers(found["= /v1/ws"].block or [])
    assert websocket["upgrade"] == "$http_upgrade"
    assert websocket["connection"] == "$connection_upgrade"
    assert METHOD_MAPS.get("$connection_upgrade") == {"default": "upgrade", "": "close"}


def installed_nginx() -> tuple[int, ...]:
    done = subprocess.run(["nginx", "-v"], capture_output=True, text=True, timeout=30)
    return version(done.stderr or done.stdout)


# Each deployment's own include files (the rest, routes.conf and methods.conf, is shared)
FLAVOURS = {
    "compose": {
        "resolver.conf": "compose-resolver.conf",
        "chat-servers.conf": "compose-chat-servers.conf",
    },
    "kubernetes": {
        "resolver.conf": "kubernetes-resolver.conf",
        "chat-servers.conf": "kubernetes-chat-servers.conf",
        "realip.conf": "kubernetes-realip.conf",
    },
}


def offline(text: str, has_resolve: bool) -> str:
    """An include file made checkable here: statically resolved upstream servers point at
    127.0.0.1 (compose's and Kubernetes' names do not resolve on this machine), a resolver
    named by host name (resolved at start) at 127.0.0.1 too. Servers with `resolve` are
    resolved at run time, so nginx -t keeps them as they are; an nginx older than 1.27.3 (no
    `resolve`, no `service=`; Debian 12 has 1.22) gets a static 127.0.0.1 server in their
    place, so the rest of the file is still checked."""
    lines = []
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["server"] and ("resolve" in words or "resolve;" in words):
            if not has_resolve:
                port = re.search(r":(\d+)\b", words[1])
                line = f"server 127.0.0.1:{port.group(1) if port else 80};"
        elif words[:1] == ["resolver"] and not re.fullmatch(r"[\d.]+", words[1]):
            line = line.replace(words[1], "127.0.0.1", 1)
        lines.append(line)
    text = "\n".join(lines) + "\n"
    return re.sub(r"server\s+[\w.-]+:(\d+);", r"server 127.0.0.1:\1;", text)


@pytest.mark.skipif(shutil.which("nginx") is None, reason="no nginx binary on this machine")
@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_nginx_accepts_the_configuration(tmp_path: Path, flavour: str) -> None:
    """`nginx -t` on compose.conf + routes.conf + methods.conf + the deployment's own includes
    (resolver.conf, chat-servers.conf; Kubernetes' realip.conf), as docker-compose and the
    Kubernetes gateway mount them, made offline by `offline`."""
    has_resolve = installed_nginx() >= RESOLVE_SINCE
    parley = tmp_path / "parley"
    parley.mkdir()
    for name in ("routes.conf", "methods.conf"):
        (parley / name).write_text((NGINX / name).read_text())
    for name, source in FLAVOURS[flavour].items():
        (parley / name).write_text(offline((NGINX / source).read_text(), has_resolve))
    server = offline((NGINX / "compose.conf").read_text(), has_resolve)
    server = server.replace(INCLUDE_DIR, f"{parley}/")
    (tmp_path / "default.conf").write_text(server)
    realip = f"include {parley / 'realip.conf'};" if flavour == "kubernetes" else ""
    temp = " ".join(
        f"{kind}_temp_path {tmp_path / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\n"
        f"error_log {tmp_path / 'error.log'};\n"
        "events {}\n"
        f"http {{ access_log off; {temp} include {tmp_path / 'default.conf'}; {realip} }}\n"
    )
    done = subprocess.run(
        [
            "nginx",
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(tmp_path / "nginx.conf"),
            "-e",
            str(tmp_path / "error.log"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
