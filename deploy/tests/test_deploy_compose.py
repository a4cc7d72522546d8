"""docker-compose.yml: valid against the Compose Specification, and complete: every workspace
service runs in it with every setting its Settings class reads, behind health-ordered starts,
its database migrated first and its metrics scraped; every long-running container, Parley's
and the infrastructure's, has a healthcheck that can run in its image."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import yaml
from deploy_tools import compose_schema
from deploy_workspace import (
    ROOT,
    TEST_ONLY,
    ServiceSpec,
    compose_gateway_files,
    interpolate,
    listen_port_variable,
    prometheus_targets,
    python_module,
    upstreams,
    workspace_packages,
)
from nginx_conf import RESOLVE_SINCE, included, parameters, parse_with, upstream_blocks, version


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["NAME=value", ...]
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


PARLEY_DOCKERFILE = "deploy/docker/Dockerfile"


def parley_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Compose services built from the Parley image definition."""
    return {
        name: s
        for name, s in compose["services"].items()
        if s.get("build", {}).get("dockerfile") == PARLEY_DOCKERFILE
    }


def one_shot(compose: dict[str, Any], name: str) -> bool:
    """A job rather than a server: never restarted, and what waits for it waits for its
    successful end (`init`). Its health is its exit code."""
    waits = [
        s["depends_on"][name]
        for s in compose["services"].values()
        if isinstance(s.get("depends_on"), dict) and name in s["depends_on"]
    ]
    return compose["services"][name].get("restart") == "no" and all(
        w == {"condition": "service_completed_successfully"} for w in waits
    )


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(compose_schema().read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(interpolate(compose))
    ]
    assert not errors, "\n".join(errors)


def test_every_workspace_service_runs_in_compose(
    compose: dict[str, Any], services: list[ServiceSpec]
) -> None:
    running = {python_module(s.get("command")) for s in compose["services"].values()}
    missing = [s.module for s in services if s.module not in running]
    assert not missing, f"no compose service runs `python -m` {missing}"


def test_every_setting_is_provided_and_no_test_only_one(
    compose: dict[str, Any], services: list[ServiceSpec]
) -> None:
    problems = []
    for name, service in compose["services"].items():
        module = python_module(service.get("command"))
        for spec in (s for s in services if s.module == module):
            env = environment(service)
            if missing := sorted(spec.variables - env.keys()):
                problems.append(f"{name}: missing {missing}")
            if forbidden := sorted(TEST_ONLY & env.keys()):
                problems.append(f"{name}: sets test-only {forbidden}")
    assert not problems, "\n".join(problems)


def test_parley_containers_are_built_from_the_image_definition(compose: dict[str, Any]) -> None:
    packages = workspace_packages()
    for name, service in parley_services(compose).items():
        build = service["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
        args = build.get("args", {})
        assert args.get("PACKAGE") in packages, f"{name}: PACKAGE must be a workspace package"
        module = python_module(service.get("command"))
        if module is not None:
            assert args.get("MODULE") == module, f"{name}: MODULE must match its command"
        # the image's non-root user, nothing writable but tmpfs, no capabilities
        assert service["user"] == "10001:10001", name
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name


def test_services_start_in_health_order(compose: dict[str, Any]) -> None:
    all_services = compose["services"]
    for name, service in parley_services(compose).items():
        if name != "init":
            assert "healthcheck" in service, f"{name} has no healthcheck"
            # readiness on the port the service is told to listen on
            env = environment(service)
            port = env[listen_port_variable(env)]
            probe = " ".join(service["healthcheck"]["test"])
            assert f":{port}/readyz" in probe, f"{name}: healthcheck is not /readyz on {port}"
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in all_services, f"{name} depends on unknown {dependency}"
            expected = (
                "service_completed_successfully" if dependency == "init" else "service_healthy"
            )
            assert condition == {"condition": expected}, f"{name} -> {dependency}"
    init = all_services["init"]
    script = " ".join(init["command"])
    assert "parley_eventstore.migrate" in script
    assert "parley_messaging.topics" in script


def test_gateway_uses_the_local_cluster_routes_and_real_upstreams(
    compose: dict[str, Any],
) -> None:
    nginx = compose["services"]["nginx"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in nginx["volumes"]}
    assert mounts["/etc/nginx/parley/routes.conf"] == "./deploy/nginx/routes.conf"
    server_conf = ROOT / mounts["/etc/nginx/conf.d/default.conf"]
    files = compose_gateway_files(compose)
    # every file compose.conf includes is mounted (its own resolver and chat servers too)
    assert included(parse_with(server_conf.read_text(), files)) <= files.keys()
    found = upstreams(server_conf.read_text(), files)
    assert found, f"no upstream in {server_conf}"
    for upstream, (host, port) in found.items():
        assert host in compose["services"], f"upstream {upstream}: no compose service {host}"
        env = environment(compose["services"][host])
        listens = env[listen_port_variable(env)]
        assert listens == str(port), f"upstream {upstream}: {host} listens on {listens}"
        assert host in nginx["depends_on"], f"nginx must wait for {host}"


def test_gateway_follows_every_chat_api_container(compose: dict[str, Any]) -> None:
    """`docker compose --scale chat-api=N`: the chat_cmd upstream re-resolves `chat-api`
    (every container's address a peer) through Docker's embedded DNS, with an nginx that
    has `resolve`, and hashes on the conversation over those addresses with the plain hash
    (a consistent ring is keyed by server name, the same for every address of one name)."""
    nginx = compose["services"]["nginx"]
    assert version(nginx["image"]) >= RESOLVE_SINCE, nginx["image"]
    files = compose_gateway_files(compose)
    mounts = {v.split(":")[1]: v.split(":")[0] for v in nginx["volumes"]}
    http = parse_with((ROOT / mounts["/etc/nginx/conf.d/default.conf"]).read_text(), files)
    (resolver,) = [d for d in http if d.name == "resolver"]
    assert resolver.args[0] == "127.0.0.11" and "ipv6=off" in resolver.args
    chat = upstream_blocks(http)["chat_cmd"]
    assert chat.get("zone"), "`resolve` needs the upstream's shared-memory zone"
    assert [d.args for d in chat.get("hash")] == [["$parley_conversation"]]
    (server,) = chat.get("server")
    assert server.args[0] == "chat-api:8103" and "resolve" in parameters(server)
    assert (
        "chat-api" in compose["services"]
        and "container_name" not in compose["services"]["chat-api"]
    ), "chat-api must be scalable"


def test_init_image_holds_every_migration_it_runs(
    compose: dict[str, Any], services: list[ServiceSpec]
) -> None:
    init = compose["services"]["init"]
    args = init["build"]["args"]
    installed = {args["PACKAGE"], *str(args.get("EXTRA_PACKAGES", "")).split()}
    packages = workspace_packages()
    assert installed <= packages, f"init installs unknown {sorted(installed - packages)}"
    package_of = {s.module: s.package for s in services}
    script = " ".join(init["command"])
    for module in re.findall(r"python -m (\w+)\.migrate", script):
        if module in package_of:  # a service's own migrations (libs come as dependencies)
            assert package_of[module] in installed, f"init runs {module}.migrate, not installed"


def test_every_database_is_migrated_before_its_services_start(compose: dict[str, Any]) -> None:
    """A database a service reads (`*_POSTGRES_DSN`) is migrated by `init`, or by a service
    that applies its own migrations at start (`*_MIGRATE_ON_START`) and that it waits for."""
    database = re.compile(r"@postgres:5432/(\w+)")
    services = {name: environment(interpolate(s)) for name, s in parley_services(compose).items()}
    migrated = {db: "init" for db in database.findall(" ".join(services["init"].values()))}
    for name, env in services.items():
        if any(k.endswith("_MIGRATE_ON_START") and v == "true" for k, v in env.items()):
            for key, value in env.items():
                if key.endswith("_POSTGRES_DSN"):
                    migrated.update((db, name) for db in database.findall(value))
    for name, env in services.items():
        waits_for = {name, *compose["services"][name].get("depends_on", {})}
        for key, value in env.items():
            if key.endswith("_POSTGRES_DSN"):
                for db in database.findall(value):
                    assert db in migrated, f"{name}: nothing migrates database {db} ({key})"
                    assert migrated[db] in waits_for, f"{name} must wait for {migrated[db]} ({db})"


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    """Every container but a one-shot job reports its health (the profiles' tooling included:
    otel-collector, jaeger, prometheus, grafana), and whatever waits for one waits for it to
    be healthy (or, for a job, to have succeeded)."""
    problems = []
    for name, service in compose["services"].items():
        check = service.get("healthcheck", {})
        if one_shot(compose, name):
            continue
        if not check.get("test") or check["test"][0] == "NONE" or check.get("disable"):
            problems.append(f"{name}: no healthcheck")
        elif check["test"][0] not in ("CMD", "CMD-SHELL"):
            problems.append(f"{name}: healthcheck test must start with CMD or CMD-SHELL")
        depends_on = service.get("depends_on", {})
        if not isinstance(depends_on, dict):
            problems.append(f"{name}: depends_on without a condition (starts before it is ready)")
            continue
        for dependency, condition in depends_on.items():
            expected = (
                "service_completed_successfully"
                if one_shot(compose, dependency)
                else "service_healthy"
            )
            if condition != {"condition": expected}:
                problems.append(f"{name} -> {dependency}: {condition}, expected {expected}")
    assert not problems, "\n".join(problems)


def test_the_collectors_probe_is_in_its_image_and_asks_its_health_extension(
    compose: dict[str, Any],
) -> None:
    """The collector image has nothing to run a healthcheck with (FROM scratch): the probe
    must be one its build adds, asking the health_check extension its configuration enables."""
    collector = compose["services"]["otel-collector"]
    test = collector["healthcheck"]["test"]
    assert test[0] == "CMD", "no shell in the collector image: CMD, never CMD-SHELL"
    build = collector["build"]
    dockerfile = (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).read_text()
    copied = re.findall(r"^COPY\s.*\s(/\S+)$", dockerfile, flags=re.MULTILINE)
    assert test[1] in copied, f"{test[1]} is not copied into the image by its Dockerfile"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in collector["volumes"]}
    config_path = next(a.split("=", 1)[1] for a in collector["command"] if "--config=" in a)
    config = yaml.safe_load((ROOT / mounts[config_path]).read_text())
    assert "health_check" in config["service"].get("extensions", [])
    port = config["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1]
    assert f"http://127.0.0.1:{port}/" in test, "the probe must ask the health_check extension"


def test_prometheus_scrapes_every_parley_service(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = prometheus_targets(config)
    for name, service in parley_services(compose).items():
        env = environment(service)
        if name != "init":
            port = env[listen_port_variable(env)]
            assert f"{name}:{port}" in targets, f"prometheus.yml does not scrape {name}:{port}"
            assert targets[f"{name}:{port}"] == "/metrics", f"{name}: scraped on another path"


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} not declared"
