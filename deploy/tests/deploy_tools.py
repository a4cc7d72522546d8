"""Pinned tools for validating the deployment files offline, built once and cached:
kustomize (compiled from the Go module proxy) and the Compose Specification JSON schema (the
file docker compose itself validates with, from the compose-go module).

    python deploy/tests/deploy_tools.py     # `make deploy-tools`; prints what it provides

The cache is PARLEY_TOOLS_DIR, else $XDG_CACHE_HOME/parley, else ~/.cache/parley. A cold
kustomize build takes about a minute (downloads + compile); afterwards both are file checks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# v5.8.3 requires Go 1.27; the machines have Go 1.26 (GOTOOLCHAIN=local, no toolchain download)
KUSTOMIZE_VERSION = "v5.8.2"
COMPOSE_GO_VERSION = "v2.16.2"


class ToolError(RuntimeError):
    pass


def cache_dir() -> Path:
    explicit = os.environ.get("PARLEY_TOOLS_DIR")
    if explicit:
        path = Path(explicit)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "parley"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ToolError("`go` is needed to build kustomize and fetch the compose schema")
    return go


def kustomize() -> Path:
    """The pinned kustomize binary, built with `go install` on first use."""
    target = cache_dir() / "bin" / f"kustomize-{KUSTOMIZE_VERSION}"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    module = f"sigs.k8s.io/kustomize/kustomize/v5@{KUSTOMIZE_VERSION}"
    with tempfile.TemporaryDirectory(dir=target.parent) as gobin:
        done = subprocess.run(
            [_go(), "install", module],
            env={**os.environ, "GOBIN": gobin},
            cwd=gobin,  # outside any go.mod
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise ToolError(f"go install {module} failed:\n{done.stderr}")
        # rename: a concurrent run never sees half a binary
        os.replace(Path(gobin) / "kustomize", target)
    return target


def compose_schema() -> Path:
    """compose-go's schema/compose-spec.json, from the Go module cache."""
    target = cache_dir() / f"compose-spec-{COMPOSE_GO_VERSION}.json"
    if target.is_file():
        return target
    module = f"github.com/compose-spec/compose-go/v2@{COMPOSE_GO_VERSION}"
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        done = subprocess.run(
            [_go(), "mod", "download", "-json", module],
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise ToolError(f"go mod download {module} failed:\n{done.stdout}{done.stderr}")
        source = Path(json.loads(done.stdout)["Dir"]) / "schema" / "compose-spec.json"
        staged = Path(tmp) / "compose-spec.json"
        shutil.copyfile(source, staged)
        os.replace(staged, target)
    return target


def main() -> int:
    try:
        print(f"kustomize      {kustomize()}")
        print(f"compose schema {compose_schema()}")
    except ToolError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
