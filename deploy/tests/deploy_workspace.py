"""What the deployment files must cover, read from the workspace itself (never a hand list):
every services/* member with a `__main__` module, and every environment variable its
pydantic-settings class reads."""

from __future__ import annotations

import ast
import importlib
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nginx_conf import INCLUDE_DIR, parse_with, server_address, upstream_blocks
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]

# Settings that exist for tests only and must never be set by a deployment.
TEST_ONLY = frozenset({"RELAY_FAULT"})


@dataclass(frozen=True)
class ServiceSpec:
    package: str  # the workspace package (uv sync --package)
    module: str  # what `python -m` runs
    prefix: str
    variables: frozenset[str]  # every variable its Settings reads, less TEST_ONLY


def _settings_class(module: str) -> type[BaseSettings]:
    config = importlib.import_module(f"{module}.config")
    found = [
        value
        for value in vars(config).values()
        if isinstance(value, type)
        and issubclass(value, BaseSettings)
        and value.__module__ == config.__name__
    ]
    if len(found) != 1:
        raise AssertionError(f"{module}.config must define exactly one Settings class")
    return found[0]


def settings_variables(settings: type[BaseSettings]) -> tuple[str, frozenset[str]]:
    prefix = str(settings.model_config.get("env_prefix") or "")
    names = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        names.add((alias or prefix + name).upper())
    return prefix.upper(), frozenset(names)


def workspace_services() -> list[ServiceSpec]:
    specs = []
    for main in sorted(ROOT.glob("services/*/src/*/__main__.py")):
        project = main.parents[2] / "pyproject.toml"
        package = tomllib.loads(project.read_text())["project"]["name"]
        module = main.parent.name
        prefix, variables = settings_variables(_settings_class(module))
        specs.append(ServiceSpec(package, module, prefix, variables - TEST_ONLY))
    return specs


def workspace_packages() -> set[str]:
    return {
        tomllib.loads(p.read_text())["project"]["name"]
        for p in ROOT.glob("*/*/pyproject.toml")
        if p.parts[-3] in ("libs", "services")
    }


_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: Any) -> Any:
    """Compose's interpolation with every variable unset: `${X:-default}` -> default,
    `${X}` -> empty, `$$` -> `$` (what docker compose validates and runs by default)."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: m.group(2) or "", value).replace("$$", "$")
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    return value


def python_module(command: Any) -> str | None:
    """`python -m <module>` -> module (list form), else None."""
    if isinstance(command, list) and len(command) >= 3 and command[:2] == ["python", "-m"]:
        return str(command[2])
    return None


_LISTEN_PORT = re.compile(r"[A-Z]+_PORT")


def listen_port_variable(names: Iterable[str]) -> str:
    """The variable naming the port a process listens on: `<PREFIX>_PORT` (USERS_PORT,
    RELAY_PORT, ...), never another `*_PORT` such as AUTH_SMTP_PORT (a port it connects to)."""
    found = [name for name in names if _LISTEN_PORT.fullmatch(name)]
    if len(found) != 1:
        raise AssertionError(f"expected one <PREFIX>_PORT variable, found {found}")
    return found[0]


def upstreams(
    nginx_conf: str, files: Mapping[str, str] | None = None
) -> dict[str, tuple[str, int | None]]:
    """`upstream NAME { ... server HOST[:PORT] ...; }` -> {NAME: (HOST, PORT)}, the
    /etc/nginx/parley/ includes read from `files` (name -> text: a deployment's own files,
    chat-servers.conf). PORT is None for a server found by its SRV records (`service=`).
    An upstream with no server (its include not given) is listed as ("", None)."""
    found = {}
    for name, block in upstream_blocks(parse_with(nginx_conf, files or {})).items():
        servers = block.get("server")
        assert len(servers) <= 1, f"upstream {name}: one server (a name) each"
        found[name] = server_address(servers[0]) if servers else ("", None)
    return found


def compose_gateway_files(compose: dict[str, Any]) -> dict[str, str]:
    """What docker-compose's nginx finds under /etc/nginx/parley/ (name -> text), from its
    bind mounts."""
    files = {}
    for volume in compose["services"]["nginx"]["volumes"]:
        source, target = volume.split(":")[:2]
        if target.startswith(INCLUDE_DIR):
            files[target.removeprefix(INCLUDE_DIR)] = (ROOT / source).read_text()
    return files


def exported_metric_names() -> set[str]:
    """Names given to prometheus_client Counter/Gauge/Histogram in libs/ and services/."""
    names = set()
    for source in [*ROOT.glob("libs/*/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]:
        names |= set(
            re.findall(r"(?:Counter|Gauge|Histogram)\(\s*\"(parley_\w+)\"", source.read_text())
        )
    return names


_METRIC_TYPES = {"Counter", "Gauge", "Histogram", "Summary"}


def _metric_declarations(source: str) -> Iterator[tuple[str, str, frozenset[str]]]:
    """(type, name, label names) of every prometheus_client metric declared in `source` with a
    literal name (`Gauge("parley_x", "help", ["a", "b"])` or `labelnames=[...]`)."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if kind not in _METRIC_TYPES or not node.args:
            continue
        name = node.args[0]
        if not (isinstance(name, ast.Constant) and str(name.value).startswith("parley_")):
            continue
        labels = node.args[2] if len(node.args) > 2 else None
        for keyword in node.keywords:
            if keyword.arg == "labelnames":
                labels = keyword.value
        names = (
            frozenset(str(e.value) for e in labels.elts if isinstance(e, ast.Constant))
            if isinstance(labels, (ast.List, ast.Tuple))
            else frozenset()
        )
        yield str(kind), str(name.value), names


def exported_series() -> dict[str, frozenset[str]]:
    """Every series name the code's metrics expose -> its label names: a Counter `x` as
    `x_total`, a Histogram `x` as `x_bucket` (with `le`), `x_count` and `x_sum`."""
    series: dict[str, frozenset[str]] = {}
    for source in [*ROOT.glob("libs/*/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]:
        for kind, name, labels in _metric_declarations(source.read_text()):
            if kind == "Counter":
                series[name if name.endswith("_total") else f"{name}_total"] = labels
            elif kind in ("Histogram", "Summary"):
                if kind == "Histogram":
                    series[f"{name}_bucket"] = labels | {"le"}
                else:
                    series[name] = labels | {"quantile"}
                series[f"{name}_count"] = labels
                series[f"{name}_sum"] = labels
            else:
                series[name] = labels
    return series


def prometheus_targets(config: dict[str, Any]) -> dict[str, str]:
    """A Prometheus configuration's scrape targets ("host:port", static or by DNS name) ->
    the metrics path each is scraped on."""
    targets = {}
    for job in config["scrape_configs"]:
        path = str(job.get("metrics_path", "/metrics"))
        for static in job.get("static_configs", []):
            targets.update(dict.fromkeys(static["targets"], path))
        for dns in job.get("dns_sd_configs", []):
            targets.update({f"{host}:{dns['port']}": path for host in dns["names"]})
    return targets
