"""The three ways to run agree: every process of the local cluster (`make up`,
deploy/local/services_catalog.py) exists under the same name in docker-compose and in the
Kubernetes base, runs the same module, gets the same variable names and port, and has its
/metrics scraped on that port by both Prometheus setups; and the gateway's upstreams (the
names deploy/nginx/routes.conf proxies to) lead to the same processes in all three."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from deploy_workspace import (
    ROOT,
    compose_gateway_files,
    listen_port_variable,
    prometheus_targets,
    python_module,
    upstreams,
)

sys.path.insert(0, str(ROOT / "deploy" / "local"))
from services_catalog import service_programs
from services_catalog import upstreams as local_upstreams
from settings import Settings

Render = Callable[[str], list[dict[str, Any]]]
LOCAL = {p.program.name: p.program for p in service_programs(Settings())}


def module_of(command: str) -> str:
    return command.split(" -m ", 1)[1].split()[0]


@pytest.mark.parametrize("name", sorted(LOCAL))
def test_compose_runs_the_local_process_alike(compose: dict[str, Any], name: str) -> None:
    local = LOCAL[name]
    assert name in compose["services"], f"{name} is in `make up` but not in docker-compose"
    service = compose["services"][name]
    assert python_module(service["command"]) == module_of(local.command)
    env = {k: str(v) for k, v in service["environment"].items()}
    assert set(local.env) <= env.keys(), f"{name}: {sorted(set(local.env) - env.keys())}"
    port = listen_port_variable(local.env)
    assert env[port] == local.env[port], f"{name} listens on another port than in `make up`"


@pytest.mark.parametrize("name", sorted(LOCAL))
def test_kubernetes_runs_the_local_process_alike(rendered: Render, name: str) -> None:
    deployments = {o["metadata"]["name"]: o for o in rendered("base") if o["kind"] == "Deployment"}
    assert name in deployments, f"{name} is in `make up` but not in deploy/k8s/base"
    (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
    assert python_module(container["command"]) == module_of(LOCAL[name].command)
    port = LOCAL[name].env[listen_port_variable(LOCAL[name].env)]
    ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
    # auth-api's internal endpoints have a port of their own, the same in both
    internal = ports.pop("internal", None)
    assert list(ports.values()) == [int(port)]
    internal_port = next(
        (v for k, v in LOCAL[name].env.items() if k.endswith("_INTERNAL_PORT")), None
    )
    assert internal == (int(internal_port) if internal_port else None)


@pytest.mark.parametrize("name", sorted(LOCAL))
def test_both_prometheus_setups_scrape_the_local_process(rendered: Render, name: str) -> None:
    """Every process of the catalogue, HTTP service or worker (a relay, a projector: their ops
    port serves /metrics), is a target of docker compose's Prometheus (the compose service of
    that name, on the local port) and annotated for scraping on that port in Kubernetes."""
    port = LOCAL[name].env[listen_port_variable(LOCAL[name].env)]
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = prometheus_targets(config)
    assert targets.get(f"{name}:{port}") == "/metrics", f"prometheus.yml: no {name}:{port}/metrics"
    deployments = {o["metadata"]["name"]: o for o in rendered("base") if o["kind"] == "Deployment"}
    notes = deployments[name]["spec"]["template"]["metadata"].get("annotations", {})
    scraped = (notes.get("prometheus.io/scrape"), notes.get("prometheus.io/port"))
    assert scraped == ("true", port), f"{name}: pods annotated {scraped}, not scraped on {port}"
    assert notes.get("prometheus.io/path", "/metrics") == "/metrics", name


def test_gateway_upstreams_lead_to_the_same_processes(compose: dict[str, Any]) -> None:
    """`make up` declares routes.conf's upstreams from services_catalog.upstreams();
    docker-compose and the Kubernetes gateway from compose.conf (service name:port, chat_cmd's
    servers from the deployment's chat-servers.conf: compose's here, Kubernetes' in
    test_deploy_k8s): the same names, each to the process of that name on the port it
    listens on locally."""
    settings = Settings()
    local = {p.upstream: (p.program.name, p.port) for p in service_programs(settings)}
    declared = upstreams(
        (ROOT / "deploy" / "nginx" / "compose.conf").read_text(), compose_gateway_files(compose)
    )
    names = set(local_upstreams(settings))
    assert names == set(declared), (
        f"only in `make up`: {sorted(names - set(declared))}, "
        f"only in compose.conf: {sorted(set(declared) - names)}"
    )
    for name, (host, port) in declared.items():
        assert local.get(name) == (host, port), f"upstream {name}: {local.get(name)} locally"
