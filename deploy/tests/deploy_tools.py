"""Pinned tools for validating the deployment files offline, built once and cached:
kustomize (compiled from the Go module proxy), the Compose Specification JSON schema (the
file docker compose itself validates with, from the compose-go module), the Prometheus
Operator's PrometheusRule CRD (its schema, from the prometheus-operator module), KEDA's
ScaledObject and TriggerAuthentication CRDs (from the keda module) and promtool
(from Debian's `prometheus` package, when apt can fetch it; its checks are skipped otherwise).

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
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
# v2.21.x requires a newer Go than the machines have; deploy/k8s/README.md asks for KEDA >= 2.16
KEDA_VERSION = "v2.20.2"
KEDA_CRDS = ("scaledobjects", "triggerauthentications")


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
    return _go_module_file(
        f"github.com/compose-spec/compose-go/v2@{COMPOSE_GO_VERSION}",
        "schema/compose-spec.json",
        cache_dir() / f"compose-spec-{COMPOSE_GO_VERSION}.json",
    )


def _go_module_file(module: str, path: str, target: Path) -> Path:
    """`path` inside Go module `module@version`, copied to `target` (from the module cache)."""
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        done = subprocess.run(
            [_go(), "mod", "download", "-json", module],
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise ToolError(f"go mod download {module} failed:\n{done.stdout}{done.stderr}")
        source = Path(json.loads(done.stdout)["Dir"]) / path
        staged = Path(tmp) / target.name
        shutil.copyfile(source, staged)
        os.replace(staged, target)
    return target


def prometheus_rule_crd() -> Path:
    """The PrometheusRule CustomResourceDefinition (YAML) of the pinned Prometheus Operator."""
    return _go_module_file(
        f"github.com/prometheus-operator/prometheus-operator@{PROMETHEUS_OPERATOR_VERSION}",
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
        cache_dir() / f"prometheusrules-crd-{PROMETHEUS_OPERATOR_VERSION}.yaml",
    )


def keda_crds() -> list[Path]:
    """KEDA's ScaledObject and TriggerAuthentication CustomResourceDefinitions (YAML)."""
    return [
        _go_module_file(
            f"github.com/kedacore/keda/v2@{KEDA_VERSION}",
            f"config/crd/bases/keda.sh_{plural}.yaml",
            cache_dir() / f"keda-{plural}-crd-{KEDA_VERSION}.yaml",
        )
        for plural in KEDA_CRDS
    ]


def promtool() -> Path:
    """promtool: $PARLEY_PROMTOOL, else one on PATH, else the one taken once from Debian's
    `prometheus` package (`apt-get download` + `dpkg-deb -x`: nothing is installed, no
    service started). Debian's is Prometheus 2.x; the rules here are the same PromQL in 3.x."""
    found = os.environ.get("PARLEY_PROMTOOL") or shutil.which("promtool")
    if found:
        return Path(found)
    bin_dir = cache_dir() / "bin"
    cached = sorted(bin_dir.glob("promtool-*"))
    if cached:
        return cached[-1]
    apt, dpkg = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if apt is None or dpkg is None:
        raise ToolError("promtool: not on PATH, and no apt-get/dpkg-deb to take it from Debian")
    bin_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=bin_dir) as tmp:
        done = subprocess.run(
            [apt, "download", "prometheus"], cwd=tmp, capture_output=True, text=True, timeout=600
        )
        debs = sorted(Path(tmp).glob("prometheus_*.deb"))
        if done.returncode != 0 or not debs:
            raise ToolError(f"apt-get download prometheus failed:\n{done.stderr}")
        version = subprocess.run(
            [dpkg, "-f", str(debs[0]), "Version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        subprocess.run([dpkg, "-x", str(debs[0]), f"{tmp}/x"], capture_output=True, check=True)
        target = bin_dir / f"promtool-{version}"
        os.replace(Path(tmp) / "x" / "usr" / "bin" / "promtool", target)
    return target


def main() -> int:
    try:
        print(f"kustomize      {kustomize()}")
        print(f"compose schema {compose_schema()}")
        print(f"rule CRD       {prometheus_rule_crd()}")
        for crd in keda_crds():
            print(f"KEDA CRD       {crd}")
    except ToolError as error:
        print(error, file=sys.stderr)
        return 1
    try:
        print(f"promtool       {promtool()}")
    except ToolError as error:  # optional: its checks are skipped without it
        print(f"promtool       unavailable ({error})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
