"""Fixtures for the deployment checks: the compose file, the rendered kustomize overlays and
the workspace's services. Tools are built on first use (deploy_tools.py) and cached."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_tools import kustomize
from deploy_workspace import ROOT, ServiceSpec, workspace_services

K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATIONS = {
    "base": K8S / "base",
    "dev": K8S / "overlays" / "dev",
    "prod": K8S / "overlays" / "prod",
}


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="session")
def services() -> list[ServiceSpec]:
    found = workspace_services()
    assert found, "no services/*/src/*/__main__.py found"
    return found


def build(path: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(kustomize()), "build", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"kustomize build {path} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="session")
def rendered() -> Callable[[str], list[dict[str, Any]]]:
    """rendered("dev") -> the objects `kustomize build deploy/k8s/overlays/dev` prints."""
    cache: dict[str, list[dict[str, Any]]] = {}

    def get(name: str) -> list[dict[str, Any]]:
        if name not in cache:
            cache[name] = build(KUSTOMIZATIONS[name])
        return cache[name]

    return get
