"""Kafka identities in every way to run Parley (issue 19.1): each Parley process signs in to
Kafka as its own principal (parley_messaging.access) in docker-compose and in Kubernetes,
with a password of its own, and the job that provisions users and ACLs has every principal's
password; the brokers of compose require SASL/SCRAM and run the authorizer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from parley_messaging.access import BROKER, OTHER_TEAMS, principal_names, principals

Render = Callable[[str], list[dict[str, Any]]]
PROCESSES = [p.name for p in principals() if p.name != OTHER_TEAMS]


def test_compose_processes_are_their_own_principals(compose: dict[str, Any]) -> None:
    services = compose["services"]
    secrets = set()
    for name in PROCESSES:
        env = services[name]["environment"]
        assert env["PARLEY_KAFKA_USERNAME"] == name
        assert env["PARLEY_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        secrets.add(env["PARLEY_KAFKA_PASSWORD"])
    assert len(secrets) == len(PROCESSES), "two processes share a Kafka password"
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"] == (
        "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    )
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert str(kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"]) == "false"
    assert "parley_messaging.access" in services["init"]["command"][-1]


@pytest.mark.parametrize("overlay", ["base", "dev", "prod"])
def test_kubernetes_workloads_are_their_own_principals(rendered: Render, overlay: str) -> None:
    objects = rendered(overlay)
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    for name in PROCESSES:
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["PARLEY_KAFKA_USERNAME"]["value"] == name
        ref = env["PARLEY_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref["key"] == f"kafka-password-{name}", f"{name} reads another's password"
    (job,) = [o for o in objects if o["kind"] == "Job" and o["metadata"]["name"] == "create-topics"]
    pod = job["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "kafka-users"]
    paths = {
        item["path"]: item["key"]
        for source in volume["projected"]["sources"]
        for item in source["secret"]["items"]
    }
    expected = {n: f"kafka-password-{n}" for n in principal_names() if n != BROKER}
    assert paths == expected
    commands = [" ".join(c["command"]) for c in pod["containers"]]
    assert any("parley_messaging.access" in c for c in commands)
