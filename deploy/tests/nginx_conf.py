"""Just enough of nginx's configuration syntax to check deploy/nginx offline: directives,
blocks and quoted strings (comments dropped), as a tree."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

NGINX = Path(__file__).resolve().parents[1] / "nginx"
# where every deployment puts the shared files and its own includes (routes.conf,
# methods.conf, resolver.conf, chat-servers.conf)
INCLUDE_DIR = "/etc/nginx/parley/"
# the first open-source nginx with `resolve` (and `service=`) on an upstream's server
RESOLVE_SINCE = (1, 27, 3)


def version(text: str) -> tuple[int, ...]:
    """`nginx:1.28`, `nginxinc/nginx-unprivileged:1.28.0`, `nginx version: nginx/1.22.1` ->
    (1, 28), (1, 28, 0), (1, 22, 1): an image's tag compares as its lowest patch release."""
    match = re.search(r"[:/](\d+(?:\.\d+)*)\S*$", text.strip())
    assert match, f"no version in {text!r}"
    return tuple(int(part) for part in match.group(1).split("."))


_TOKEN = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[{};]|[^\s{};'"]+""")


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None  # None: a simple directive ending in `;`

    def get(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]


def _unquote(token: str) -> str:
    return token[1:-1] if token[:1] in ("'", '"') else token


def parse(text: str) -> list[Directive]:
    """The top-level directives of `text` (an included file: no surrounding context needed)."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    tokens = _TOKEN.findall("\n".join(lines))
    stack: list[list[Directive]] = [[]]
    words: list[str] = []
    for token in tokens:
        if token == ";":
            stack[-1].append(Directive(_unquote(words[0]), [_unquote(w) for w in words[1:]]))
            words = []
        elif token == "{":
            directive = Directive(_unquote(words[0]), [_unquote(w) for w in words[1:]], [])
            stack[-1].append(directive)
            assert directive.block is not None
            stack.append(directive.block)
            words = []
        elif token == "}":
            assert not words, f"unterminated directive {words}"
            stack.pop()
        else:
            words.append(token)
    assert len(stack) == 1 and not words, "unbalanced braces"
    return stack[0]


def read(name: str) -> list[Directive]:
    return parse((NGINX / name).read_text())


def parse_with(text: str, files: Mapping[str, str]) -> list[Directive]:
    """`text` parsed with every `include /etc/nginx/parley/NAME;` whose NAME is in `files`
    replaced, where it stands, by the directives of files[NAME] (as nginx does; others kept)."""

    def expand(directives: list[Directive]) -> list[Directive]:
        out: list[Directive] = []
        for d in directives:
            name = d.args[0].removeprefix(INCLUDE_DIR) if d.args else ""
            if d.name == "include" and d.args[0].startswith(INCLUDE_DIR) and name in files:
                out += expand(parse(files[name]))
            elif d.block is not None:
                out.append(Directive(d.name, d.args, expand(d.block)))
            else:
                out.append(d)
        return out

    return expand(parse(text))


def included(directives: list[Directive]) -> set[str]:
    """The names of the /etc/nginx/parley/ files `directives` include, at any depth."""
    names = set()
    for d in directives:
        if d.name == "include" and d.args[0].startswith(INCLUDE_DIR):
            names.add(d.args[0].removeprefix(INCLUDE_DIR))
        names |= included(d.block or [])
    return names


def upstream_blocks(directives: list[Directive]) -> dict[str, Directive]:
    """`upstream NAME {...}` -> {NAME: directive}."""
    return {d.args[0]: d for d in directives if d.name == "upstream"}


def server_address(server: Directive) -> tuple[str, int | None]:
    """An upstream's `server HOST[:PORT] [params]` -> (HOST, PORT or None: from SRV/default)."""
    host, colon, port = server.args[0].rpartition(":")
    return (host, int(port)) if colon and port.isdigit() else (server.args[0], None)


def parameters(server: Directive) -> dict[str, str]:
    """An upstream server's parameters: `resolve` -> {"resolve": ""}, `service=http` ->
    {"service": "http"}."""
    found: dict[str, str] = {}
    for arg in server.args[1:]:
        name, _, value = arg.partition("=")
        found[name] = value
    return found


def maps(directives: list[Directive]) -> dict[str, dict[str, str]]:
    """`map $source $variable { key value; ... }` -> {"$variable": {key: value, ...}}."""
    return {
        d.args[1]: {entry.name: entry.args[0] for entry in d.block or []}
        for d in directives
        if d.name == "map"
    }


def locations(directives: list[Directive]) -> dict[str, Directive]:
    """`location [modifier] path {...}` -> {"[modifier ]path": directive}."""
    return {" ".join(d.args): d for d in directives if d.name == "location"}


def proxied_upstream(location: Directive) -> str | None:
    """`proxy_pass http://NAME[/path]` -> NAME (a `$variable` stays as it is)."""
    for d in location.get("proxy_pass"):
        match = re.fullmatch(r"https?://([$\w]+)(?:/.*)?", d.args[0])
        assert match, f"unexpected proxy_pass {d.args[0]}"
        return match.group(1)
    return None


def headers(directives: list[Directive]) -> dict[str, str]:
    """proxy_set_header NAME VALUE -> {name (lower case): value}."""
    return {d.args[0].lower(): d.args[1] for d in directives if d.name == "proxy_set_header"}


def seconds(value: str) -> float:
    """nginx time: `30s`, `1h`, `3600` -> seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value)
    assert match, f"not an nginx time: {value}"
    return int(match.group(1)) * units[match.group(2) or "s"]
