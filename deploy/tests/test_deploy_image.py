"""deploy/docker/Dockerfile, parsed with BuildKit's own parser (the `dockerfile` package): a
multi-stage build that installs one workspace package from uv.lock and runs as non-root."""

from __future__ import annotations

from pathlib import Path

import dockerfile
from deploy_workspace import ROOT

DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"


def stages() -> list[list[dockerfile.Command]]:
    parsed: list[list[dockerfile.Command]] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            parsed.append([])
        if parsed:
            parsed[-1].append(command)
    return parsed


def test_build_installs_one_package_exactly_from_the_lock() -> None:
    runs = [" ".join(c.value) for stage in stages() for c in stage if c.cmd == "RUN"]
    sync = [r for r in runs if "uv sync" in r]
    assert sync, "no `uv sync` in the build"
    for flag in ("--frozen", "--no-dev", "--package"):
        assert all(flag in r for r in sync), f"uv sync without {flag}"


def test_runtime_stage_is_non_root_and_carries_no_build_tools() -> None:
    *_, runtime = stages()
    users = [c.value[0] for c in runtime if c.cmd == "USER"]
    assert users, "the runtime stage must set USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    copied = [c for c in runtime if c.cmd == "COPY"]
    assert all(any(f.startswith("--from=") for f in c.flags) for c in copied), (
        "the runtime stage copies the built venv only, never the build context"
    )


def test_context_is_filtered() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**" in ignore, ".dockerignore must start from nothing and allow what the build needs"
    assert "!uv.lock" in ignore
    assert Path(DOCKERFILE).is_file()
