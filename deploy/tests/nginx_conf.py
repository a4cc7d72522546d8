"""Just enough of nginx's configuration syntax to check deploy/nginx offline: directives,
blocks and quoted strings (comments dropped), as a tree."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

NGINX = Path(__file__).resolve().parents[1] / "nginx"

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
