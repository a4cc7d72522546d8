"""deptry on every member of the uv workspace (`make lint`): each member's declared dependencies
against the imports of its own `src/` (missing, unused, transitive, misplaced).

deptry checks one project at a time and reads a project's dependencies and its configuration
from the same pyproject.toml, so this runs it once per member (`--config <member>/pyproject.toml`)
and passes the settings kept in the root pyproject.toml as options: `[tool.deptry]` for every
member, `[tool.parley.deptry.members."<member dir>"]` added for one member only.

Usage: python tools/deptry_workspace.py [MEMBER_DIR...]   (default: every workspace member)
"""

from __future__ import annotations

import glob
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def members(root: Mapping[str, Any]) -> list[str]:
    """The member directories `[tool.uv.workspace]` names (relative, sorted)."""
    workspace = root["tool"]["uv"]["workspace"]
    found = {
        path
        for pattern in workspace["members"]
        for path in glob.glob(pattern, root_dir=ROOT)
        if (ROOT / path / "pyproject.toml").is_file()
    }
    for pattern in workspace.get("exclude", []):
        found -= set(glob.glob(pattern, root_dir=ROOT))
    return sorted(found)


def settings_for(root: Mapping[str, Any], member: str) -> dict[str, Any]:
    """`[tool.deptry]`, with the member's own per-rule ignores added."""
    shared: dict[str, Any] = dict(root["tool"].get("deptry", {}))
    own = root["tool"].get("parley", {}).get("deptry", {}).get("members", {}).get(member, {})
    unknown = set(own) - {"per_rule_ignores"}
    if unknown:
        raise SystemExit(f"[tool.parley.deptry.members.{member!r}]: unsupported {sorted(unknown)}")
    ignores: dict[str, list[str]] = {
        rule: list(names) for rule, names in shared.get("per_rule_ignores", {}).items()
    }
    for rule, names in own.get("per_rule_ignores", {}).items():
        ignores[rule] = [*ignores.get(rule, []), *names]
    if ignores:
        shared["per_rule_ignores"] = ignores
    return shared


def options(settings: Mapping[str, Any]) -> list[str]:
    """deptry's command-line form of the `[tool.deptry]` keys this repository uses."""
    args: list[str] = []
    for key, value in settings.items():
        if key in ("per_rule_ignores", "package_module_name_map"):
            pairs = (f"{k}={'|'.join(v) if isinstance(v, list) else v}" for k, v in value.items())
            args += [f"--{key.replace('_', '-')}", ",".join(pairs)]
        elif key == "ignore":
            args += ["--ignore", ",".join(value)]
        elif key in ("known_first_party", "extend_exclude"):
            for item in value:
                args += [f"--{key.replace('_', '-')}", item]
        else:
            raise SystemExit(f"[tool.deptry] {key}: not passed on by {Path(__file__).name}")
    return args


def check(member: str, settings: Mapping[str, Any]) -> bool:
    command = [
        sys.executable,
        "-m",
        "deptry",
        f"{member}/src",
        "--config",
        f"{member}/pyproject.toml",
        "--no-ansi",
        *options(settings),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"deptry {member}:\n{done.stdout}{done.stderr}", end="", file=sys.stderr)
    return done.returncode == 0


def main(argv: Sequence[str]) -> int:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    chosen = list(argv) or members(root)
    failed = [member for member in chosen if not check(member, settings_for(root, member))]
    if failed:
        print(f"deptry: dependency issues in {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
