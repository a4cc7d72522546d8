"""deploy/k8s: both overlays (and the base) build with the pinned kustomize, every rendered
object is valid against the Kubernetes OpenAPI schemas (strict: unknown fields fail; the
Prometheus Operator's PrometheusRule and KEDA's ScaledObject and TriggerAuthentication
against their CRDs' schemas, as strictly), and the
manifests are complete: every workspace service with every setting, probes on its port,
scrape annotations on its metrics port, hardened pods, an autoscaler (on metrics the code
exports) and a disruption budget, secrets only by reference, every database migrated by a
Job, and Ingresses that keep the gateway's long-lived routes open."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from deploy_tools import keda_crds, prometheus_rule_crd
from deploy_workspace import (
    ROOT,
    TEST_ONLY,
    ServiceSpec,
    exported_metric_names,
    exported_series,
    python_module,
)
from nginx_conf import (
    INCLUDE_DIR,
    RESOLVE_SINCE,
    included,
    locations,
    parameters,
    parse_with,
    read,
    seconds,
    server_address,
    upstream_blocks,
    version,
)

Render = Callable[[str], list[dict[str, Any]]]
KUBERNETES_VERSION = "1.33.0"  # oldest minor still supported upstream when this was written
SECRET = "parley-secrets"
WORKLOADS = ("Deployment", "StatefulSet", "Job")
FILES_INGRESS = "parley-files"  # the object store's host (attachments' signed URLs)


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for o in objects:
        if o["kind"] in WORKLOADS:
            yield o["metadata"]["name"], o["spec"]["template"]["spec"]


def configmap(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    maps = by_kind(objects, "ConfigMap")
    assert name in maps, f"ConfigMap {name} referenced but not rendered"
    data: dict[str, str] = maps[name].get("data", {})
    return data


def container_env(objects: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """Every variable the container gets -> its value ('<secret:key>' for secret refs)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert "secretRef" not in source, "envFrom secretRef hides which keys are read"
        data = configmap(objects, source["configMapRef"]["name"])
        env.update({source.get("prefix", "") + k: v for k, v in data.items()})
    for item in container.get("env", []):
        ref = item.get("valueFrom", {})
        if "configMapKeyRef" in ref:
            key = ref["configMapKeyRef"]
            data = configmap(objects, key["name"])
            assert key["key"] in data, f"{item['name']}: {key['name']} has no {key['key']}"
            env[item["name"]] = data[key["key"]]
        elif "secretKeyRef" in ref:
            key = ref["secretKeyRef"]
            assert key["name"] == SECRET, f"{item['name']}: secrets come from {SECRET}"
            env[item["name"]] = f"<secret:{key['key']}>"
        else:
            env[item["name"]] = str(item.get("value", ""))
    return env


def namespace_of(objects: list[dict[str, Any]]) -> str:
    """The namespace the objects are rendered into (the base names none: kubectl's default)."""
    found = {o["metadata"].get("namespace", "default") for o in objects if o["kind"] != "Namespace"}
    assert len(found) == 1, f"objects in several namespaces: {sorted(found)}"
    return found.pop()


def documented_secret_keys() -> set[str]:
    """The keys listed in deploy/k8s/README.md's table of parley-secrets."""
    text = (ROOT / "deploy" / "k8s" / "README.md").read_text()
    return set(re.findall(r"^\|\s*`([a-z0-9-]+)`\s*\|", text, flags=re.MULTILINE))


def strict(schema: Any) -> Any:
    """An OpenAPI v3 schema of a CRD that refuses unknown fields, as kubectl's strict field
    validation does: every object schema listing its properties gets additionalProperties:
    false, unless it keeps unknown fields on purpose."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def custom_resource_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> a validator, for the custom resources the manifests use (the
    Kubernetes schemas do not have them): the PrometheusRule of the pinned operator, KEDA's
    ScaledObject and TriggerAuthentication of the pinned KEDA."""
    validators = {}
    for path in (prometheus_rule_crd(), *keda_crds()):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        validators.update(
            {
                (f"{group}/{served['name']}", kind): jsonschema.Draft7Validator(
                    strict(served["schema"]["openAPIV3Schema"])
                )
                for served in crd["spec"]["versions"]
                if served.get("served", True)
            }
        )
    return validators


@pytest.mark.parametrize("name", ["base", "dev", "prod"])
def test_objects_are_valid_kubernetes(rendered: Render, name: str) -> None:
    errors = []
    custom = custom_resource_validators()
    for obj in rendered(name):
        if (obj["apiVersion"], obj["kind"]) in custom:
            validator = custom[obj["apiVersion"], obj["kind"]]
            for e in validator.iter_errors(obj):
                path = "/".join(map(str, e.absolute_path))
                errors.append(f"{obj['kind']}/{obj['metadata']['name']} {path}: {e.message}")
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = "/".join(map(str, error.path))
            errors.append(f"{obj['kind']}/{obj['metadata']['name']} {path}: {error.message}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("name", ["base", "dev", "prod"])
def test_every_workspace_service_runs_with_every_setting(
    rendered: Render, services: list[ServiceSpec], name: str
) -> None:
    objects = rendered(name)
    problems = []
    for spec in services:
        containers = [
            c
            for _, pod in pod_specs(objects)
            for c in pod["containers"]
            if python_module(c.get("command")) == spec.module
        ]
        if not containers:
            problems.append(f"no workload runs `python -m {spec.module}`")
        for container in containers:
            env = container_env(objects, container)
            if missing := sorted(spec.variables - env.keys()):
                problems.append(f"{container['name']}: missing {missing}")
            if forbidden := sorted(TEST_ONLY & env.keys()):
                problems.append(f"{container['name']}: sets test-only {forbidden}")
            # probes on the port the service is told to listen on
            port = int(env[f"{spec.prefix}PORT"])
            declared = {p["name"]: p["containerPort"] for p in container["ports"]}
            for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                get = container[probe]["httpGet"]
                if get["path"] != path or declared.get(get["port"], get["port"]) != port:
                    problems.append(f"{container['name']}: {probe} is not {path} on {port}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", ["base", "dev", "prod"])
def test_every_parley_process_is_scraped_on_its_metrics_port(rendered: Render, name: str) -> None:
    """Every Deployment running a Parley process (`python -m`) asks the cluster's Prometheus,
    by the prometheus.io annotations of its pods, to scrape /metrics on the port it listens on
    (its only container port: /metrics is served next to the API or the worker's probes)."""
    problems = []
    for dep_name, dep in by_kind(rendered(name), "Deployment").items():
        template = dep["spec"]["template"]
        parley = [c for c in template["spec"]["containers"] if python_module(c.get("command"))]
        if not parley:
            continue  # the nginx gateway
        notes = template["metadata"].get("annotations", {})
        # auth-api's `internal` port serves only its internal routes (no /metrics there)
        ports = [
            p["containerPort"]
            for c in parley
            for p in c.get("ports", [])
            if p.get("name") != "internal"
        ]
        if notes.get("prometheus.io/scrape") != "true":
            problems.append(f'{dep_name}: prometheus.io/scrape is not "true"')
        if notes.get("prometheus.io/path", "/metrics") != "/metrics":
            problems.append(f"{dep_name}: prometheus.io/path is not /metrics")
        if ports != [int(notes.get("prometheus.io/port", "0"))]:
            problems.append(f"{dep_name}: prometheus.io/port is not its port {ports}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", ["base", "dev", "prod"])
def test_pods_are_hardened_and_sized(rendered: Render, name: str) -> None:
    problems = []
    for workload, pod in pod_specs(rendered(name)):
        if pod.get("securityContext", {}).get("runAsNonRoot") is not True:
            problems.append(f"{workload}: runAsNonRoot")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{workload}: mounts a service account token")
        for c in pod["containers"]:
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{workload}/{c['name']}: allowPrivilegeEscalation")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{workload}/{c['name']}: readOnlyRootFilesystem")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{workload}/{c['name']}: capabilities not dropped")
            for bound in ("requests", "limits"):
                if set(c.get("resources", {}).get(bound, {})) != {"cpu", "memory"}:
                    problems.append(f"{workload}/{c['name']}: resources.{bound}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", ["base", "dev", "prod"])
def test_every_deployment_has_a_budget_and_stateless_ones_an_autoscaler(
    rendered: Render, name: str
) -> None:
    objects = rendered(name)
    deployments = by_kind(objects, "Deployment")
    budgets = by_kind(objects, "PodDisruptionBudget").values()
    by_hpa = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in by_kind(objects, "HorizontalPodAutoscaler").values()
    }
    # KEDA makes an HPA of each ScaledObject: one target may not have both (they would fight)
    by_keda = {
        o["spec"]["scaleTargetRef"]["name"] for o in by_kind(objects, "ScaledObject").values()
    }
    assert not by_hpa & by_keda, f"both an HPA and a ScaledObject: {sorted(by_hpa & by_keda)}"
    scaled = by_hpa | by_keda
    for dep_name, dep in deployments.items():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert any(
            b["spec"]["selector"]["matchLabels"].items() <= labels.items() for b in budgets
        ), f"{dep_name} has no PodDisruptionBudget"
        component = labels.get("app.kubernetes.io/component")
        if component == "relay":
            # leadership by advisory lock: a fixed leader + standby, never autoscaled
            assert dep_name not in scaled and dep["spec"]["replicas"] >= 2, dep_name
        else:
            assert dep_name in scaled, f"{dep_name} has no HorizontalPodAutoscaler or ScaledObject"
            assert "replicas" not in dep["spec"], f"{dep_name}: replicas fights the autoscaler"


@pytest.mark.parametrize("name", ["base", "dev", "prod"])
def test_secrets_are_referenced_never_committed(rendered: Render, name: str) -> None:
    objects = rendered(name)
    assert not by_kind(objects, "Secret"), "secret values must not be in the manifests"
    used = {
        ref["secretKeyRef"]["key"]
        for _, pod in pod_specs(objects)
        for c in pod["containers"]
        for item in c.get("env", [])
        if "secretKeyRef" in (ref := item.get("valueFrom", {}))
    }
    for auth in by_kind(objects, "TriggerAuthentication").values():
        for ref in auth["spec"].get("secretTargetRef", []):
            assert ref["name"] == SECRET, f"TriggerAuthentication: secrets come from {SECRET}"
            used.add(ref["key"])
    assert used == documented_secret_keys(), "deploy/k8s/README.md must list exactly the keys used"


@pytest.mark.parametrize("name", ["base", "dev", "prod"])
def test_gateway_routes_like_the_local_cluster(rendered: Render, name: str) -> None:
    objects = rendered(name)
    nginx = ROOT / "deploy" / "nginx"
    gateway_maps = [
        m for n, m in by_kind(objects, "ConfigMap").items() if n.startswith("gateway-nginx")
    ]
    assert len(gateway_maps) == 1
    data = gateway_maps[0]["data"]
    assert data["routes.conf"] == (nginx / "routes.conf").read_text()
    assert data["methods.conf"] == (nginx / "methods.conf").read_text()
    k8s_services = by_kind(objects, "Service")
    policy = by_kind(objects, "NetworkPolicy")["gateway"]["spec"]
    allowed = {
        (rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"], p["port"])
        for rule in policy["egress"]
        for p in rule["ports"]
    }
    # every file default.conf includes is in the ConfigMap (and mounted: the next test)
    assert included(parse_with(data["default.conf"], data)) <= data.keys()
    suffix = f".{namespace_of(objects)}.svc.cluster.local"
    for upstream, block in upstream_blocks(parse_with(data["default.conf"], data)).items():
        (server,) = block.get("server")
        host, port = server_address(server)
        service_name = host.removesuffix(suffix)  # a fully qualified name: its namespace's
        assert service_name in k8s_services, f"upstream {upstream}: no Service {host}"
        service = k8s_services[service_name]["spec"]
        ports = {p["name"]: p["port"] for p in service["ports"]}
        if port is None:  # found by its SRV records: the port named by `service=`
            port = ports.get(parameters(server)["service"])
        assert port in ports.values(), f"upstream {upstream}: {service_name} has no port {port}"
        pods = service["selector"]["app.kubernetes.io/name"]
        assert (pods, port) in allowed, f"NetworkPolicy gateway must allow {pods}:{port}"
    ingresses = by_kind(objects, "Ingress")
    ingresses.pop(FILES_INGRESS, None)  # the object store's own host (the next test)
    assert ingresses, "no Ingress"
    for ingress in ingresses.values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["name"] == "gateway"
    # one host: the controller merges the Ingresses into one server, with one certificate
    faces = {
        name: (
            sorted(rule.get("host", "") for rule in ingress["spec"]["rules"]),
            ingress["spec"].get("tls"),
        )
        for name, ingress in ingresses.items()
    }
    assert len(set(map(repr, faces.values()))) == 1, f"Ingresses differ in host or TLS: {faces}"


def pod_selected(
    objects: list[dict[str, Any]], policy_name: str, direction: str, peer: str, port: int
) -> bool:
    """Whether NetworkPolicy `policy_name` lets its pods reach (egress) or be reached by
    (ingress) the pods named `peer` of this namespace on TCP `port`."""
    spec = by_kind(objects, "NetworkPolicy")[policy_name]["spec"]
    side = "to" if direction == "egress" else "from"
    return any(
        any(p.get("protocol", "TCP") == "TCP" and p.get("port") == port for p in rule["ports"])
        and any(
            set(other) == {"podSelector"}
            and other["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == peer
            for other in rule[side]
        )
        for rule in spec.get(direction, [])
    )


@pytest.mark.parametrize("name", ["base", "dev", "prod"])
def test_gateway_hashes_chat_writes_over_chat_api_pods(rendered: Render, name: str) -> None:
    """Conversation affinity (issue 22): the gateway's chat_cmd upstream hashes consistently
    over chat-api's pods, found by the SRV records of the headless Service chat-api-pods
    under its fully qualified name in the namespace the objects are rendered into (nginx's
    resolver has no search domains), re-resolved through kube-dns by an nginx that has
    `resolve`; every file it includes is mounted where compose.conf includes it from, and
    the NetworkPolicies let the gateway ask kube-dns and reach the pods directly."""
    objects = rendered(name)
    namespace = namespace_of(objects)
    (config,) = [
        m for n, m in by_kind(objects, "ConfigMap").items() if n.startswith("gateway-nginx")
    ]
    data = config["data"]
    http = parse_with(data["default.conf"], data)
    chat = upstream_blocks(http)["chat_cmd"]
    assert chat.get("zone"), "`resolve` needs the upstream's shared-memory zone"
    # consistent: the ring is keyed by the peers' SRV target names (one per pod, the same in
    # every gateway pod), so all gateway replicas send a conversation to the same pod
    assert [d.args for d in chat.get("hash")] == [["$parley_conversation", "consistent"]]
    (server,) = chat.get("server")
    assert server.args == [
        f"chat-api-pods.{namespace}.svc.cluster.local",
        "service=http",
        "resolve",
    ]
    (resolver,) = [d for d in http if d.name == "resolver"]
    assert resolver.args[0] == "kube-dns.kube-system.svc.cluster.local"
    assert "ipv6=off" in resolver.args and "valid=5s" in resolver.args
    # the headless Service: every ready chat-api pod, its port named as the SRV service
    service = by_kind(objects, "Service")["chat-api-pods"]["spec"]
    assert service["clusterIP"] == "None"
    deployment = by_kind(objects, "Deployment")["chat-api"]["spec"]
    assert service["selector"] == deployment["selector"]["matchLabels"]
    assert service["selector"].items() <= deployment["template"]["metadata"]["labels"].items()
    assert not service.get("publishNotReadyAddresses"), "only ready pods take writes"
    (port,) = [p for p in service["ports"] if p["name"] == parameters(server)["service"]]
    (container,) = deployment["template"]["spec"]["containers"]
    target = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port.get("protocol", "TCP") == "TCP"
    assert port["port"] == 8103 and target[port["targetPort"]] == 8103
    # the gateway pods mount every included file where compose.conf includes it from
    gateway = by_kind(objects, "Deployment")["gateway"]["spec"]["template"]["spec"]
    (nginx,) = gateway["containers"]
    assert version(nginx["image"]) >= RESOLVE_SINCE, nginx["image"]
    volumes = {v["name"]: v for v in gateway["volumes"]}
    mounted = {
        item["path"]
        for mount in nginx["volumeMounts"]
        if mount["mountPath"].rstrip("/") + "/" == INCLUDE_DIR
        for item in volumes[mount["name"]]["configMap"]["items"]
        if item["key"] == item["path"] and item["key"] in data
    }
    assert included(http) <= mounted, f"not mounted: {sorted(included(http) - mounted)}"
    # the pods' own addresses now: gateway -> chat-api pods on 8103 both ways, and DNS
    assert pod_selected(objects, "gateway", "egress", "chat-api", 8103)
    assert pod_selected(objects, "chat-api", "ingress", "gateway", 8103)
    dns = [
        p["spec"]
        for p in by_kind(objects, "NetworkPolicy").values()
        if "Egress" in p["spec"].get("policyTypes", [])
        and p["spec"]["podSelector"].get("matchLabels", {}).items()
        <= {"app.kubernetes.io/name": "gateway"}.items()
        and any(
            {(q.get("protocol"), q.get("port")) for q in rule.get("ports", [])}
            >= {("UDP", 53), ("TCP", 53)}
            and any(
                peer.get("namespaceSelector", {}).get("matchLabels")
                == {"kubernetes.io/metadata.name": "kube-system"}
                and peer.get("podSelector", {}).get("matchLabels") == {"k8s-app": "kube-dns"}
                for peer in rule["to"]
            )
            for rule in p["spec"].get("egress", [])
        )
    ]
    assert dns, "no NetworkPolicy lets the gateway ask kube-dns (UDP and TCP 53)"


@pytest.mark.parametrize("name", ["base", "dev", "prod"])
def test_clients_reach_the_object_store_on_the_host_urls_are_signed_for(
    rendered: Render, name: str
) -> None:
    """Attachments: chat-api signs upload and download URLs for CHAT_S3_PUBLIC_URL (SigV4
    signs the host), so the Ingress of that host must lead to the object store's S3 port,
    with TLS wherever the API has it, and the S3 endpoint chat-api calls must be a Service."""
    objects = rendered(name)
    ingresses = by_kind(objects, "Ingress")
    files = ingresses.pop(FILES_INGRESS)
    (chat,) = [
        c
        for _, pod in pod_specs(objects)
        for c in pod["containers"]
        if python_module(c.get("command")) == "parley_chat"
    ]
    env = container_env(objects, chat)
    public = urlsplit(env["CHAT_S3_PUBLIC_URL"])
    (rule,) = files["spec"]["rules"]
    assert rule["host"] == public.hostname
    services = by_kind(objects, "Service")
    for path in rule["http"]["paths"]:
        assert path["path"] == "/" and path["pathType"] == "Prefix"
        backend = path["backend"]["service"]
        ports = {p["name"]: p["port"] for p in services[backend["name"]]["spec"]["ports"]}
        assert backend["port"]["name"] in ports
    endpoint = urlsplit(env["CHAT_S3_ENDPOINT_URL"])
    assert endpoint.hostname in services
    assert endpoint.port in [p["port"] for p in services[endpoint.hostname]["spec"]["ports"]]
    api_tls = next(iter(ingresses.values()))["spec"].get("tls")
    files_tls = files["spec"].get("tls")
    assert bool(files_tls) == bool(api_tls), "the files host has TLS where the API has it"
    if files_tls:
        assert public.scheme == "https" and public.hostname in files_tls[0]["hosts"]
    notes = files["metadata"].get("annotations", {})
    size = notes.get("nginx.ingress.kubernetes.io/proxy-body-size", "1m")
    assert size.endswith("m") and int(size[:-1]) * 2**20 >= int(env["CHAT_ATTACHMENT_MAX_BYTES"])


def ingress_path_for(objects: list[dict[str, Any]], uri: str) -> tuple[dict[str, Any], str]:
    """The Ingress whose path ingress-nginx picks for `uri` (the longest match; Exact before
    Prefix), and that path."""
    found = []
    for ingress in by_kind(objects, "Ingress").values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                p, kind = path["path"], path["pathType"]
                if (kind == "Exact" and uri == p) or (
                    kind == "Prefix" and (uri == p or uri.startswith(p.rstrip("/") + "/"))
                ):
                    found.append((len(p), kind == "Exact", ingress, p))
    assert found, f"no Ingress path for {uri}"
    *_, ingress, path = max(found, key=lambda f: (f[0], f[1]))
    return ingress, path


@pytest.mark.parametrize("name", ["base", "dev", "prod"])
def test_ingress_keeps_the_gateways_long_lived_routes_open(rendered: Render, name: str) -> None:
    """Every routes.conf location with a longer read timeout than the server's (the realtime
    gateway's streams) meets an Ingress path with at least those timeouts and no buffering,
    or the ingress controller would cut what the gateway keeps open."""
    objects = rendered(name)
    routes = read("routes.conf")
    default = seconds(next(d for d in routes if d.name == "proxy_read_timeout").args[0])
    long_lived = {
        key: {d.name: d.args[0] for d in location.block or []}
        for key, location in locations(routes).items()
        if any(
            d.name == "proxy_read_timeout" and seconds(d.args[0]) > default
            for d in location.block or []
        )
    }
    assert long_lived, "routes.conf has no long-lived location (the realtime streams)"
    prefix = "nginx.ingress.kubernetes.io/"
    for key, settings in long_lived.items():
        modifier, _, path = key.rpartition(" ")
        assert modifier in ("", "=", "^~"), f"location {key}: a regex has no Ingress path to check"
        uris = [path] if modifier == "=" else [path, path.rstrip("/") + "/below"]
        for uri in uris:
            ingress, matched = ingress_path_for(objects, uri)
            notes = ingress["metadata"].get("annotations", {})
            where = f"{uri} (Ingress {ingress['metadata']['name']}, path {matched})"
            for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
                wanted = seconds(settings[timeout])
                given = notes.get(prefix + timeout.replace("_", "-"), "60")
                assert seconds(given) >= wanted, f"{where}: {timeout} {given} < {wanted}"
            assert notes.get(prefix + "proxy-buffering", "off") == "off", where


def projection_of(module: str, name: str) -> Any:
    """The Projection `python -m module` runs under the name its settings give it (its
    consumer group): from the `parley.projections` entry point of that package."""
    from importlib.metadata import entry_points

    (point,) = [
        p for p in entry_points(group="parley.projections") if p.value.startswith(f"{module}.")
    ]
    return point.load()(name)


@pytest.mark.parametrize("name", ["base", "dev", "prod"])
def test_autoscalers_scale_on_metrics_the_code_exports(rendered: Render, name: str) -> None:
    """HPAs' Pods/Object metrics and KEDA's `prometheus` triggers name series the code
    exports (with the labels the query uses); KEDA's `kafka` triggers watch the consumer
    group the projector really joins (its Projection under the name its settings give it),
    on exactly the topics it reads, at the Kafka its container is given, logged in as the
    projector's own principal, which the ACLs let see that group and those topics."""
    from parley_messaging.access import principals
    from parley_projector_search.runtime import group_for
    from parley_query_gateway.bootstrap import SEARCH_GROUP_PREFIX

    objects = rendered(name)
    exported = exported_metric_names()
    for hpa_name, hpa in by_kind(objects, "HorizontalPodAutoscaler").items():
        for metric in hpa["spec"].get("metrics", []):
            kind = metric["type"]
            if kind in ("Pods", "Object"):
                metric_name = metric[kind.lower()]["metric"]["name"]
                assert metric_name in exported, f"{hpa_name}: no service exports {metric_name}"
    series = exported_series()
    grants = {p.name: p.grants for p in principals()}
    (endpoints,) = [
        m["data"]
        for n, m in by_kind(objects, "ConfigMap").items()
        if n.startswith("parley-endpoints-")
    ]
    deployments = by_kind(objects, "Deployment")
    auths = by_kind(objects, "TriggerAuthentication")
    kinds = set()
    for so_name, scaled in by_kind(objects, "ScaledObject").items():
        target = scaled["spec"]["scaleTargetRef"]
        pod = deployments[target["name"]]["spec"]["template"]["spec"]
        (container,) = [
            c
            for c in pod["containers"]
            if c["name"] == target.get("envSourceContainerName", pod["containers"][0]["name"])
        ]
        env = container_env(objects, container)
        module = python_module(container["command"])
        topics = set()
        for trigger in scaled["spec"]["triggers"]:
            meta, kinds = trigger["metadata"], kinds | {trigger["type"]}
            if trigger["type"] == "prometheus":
                query = meta["query"]
                for metric_name in set(re.findall(r"\b(parley_\w+)", query)):
                    assert metric_name in series, f"{so_name}: no service exports {metric_name}"
                    used = set(re.findall(r"(\w+)\s*=~?", query)) | {
                        label
                        for group in re.findall(r"by\s*\(([^)]*)\)", query)
                        for label in re.split(r"\s*,\s*", group.strip())
                    }
                    assert used <= series[metric_name], f"{so_name}: {used - series[metric_name]}"
                # the search model's groups, as the query gateway exports the live one's lag
                # and the projector names them
                group = re.search(r'group=~"([^"]+)"', query)
                assert group, f"{so_name}: the query names no consumer group"
                assert re.fullmatch(group.group(1), group_for(7)), so_name
                assert re.fullmatch(group.group(1), f"{SEARCH_GROUP_PREFIX}7"), so_name
                assert not re.fullmatch(group.group(1), "projector-search"), so_name
                assert float(meta["threshold"]) > 0
            elif trigger["type"] == "kafka":
                projection = projection_of(module, env["PROJECTOR_NAME"])
                assert meta["consumerGroup"] == projection.group, so_name
                topics.add(meta["topic"])
                servers = meta.get("bootstrapServers") or env[meta["bootstrapServersFromEnv"]]
                assert servers == endpoints["kafka-bootstrap-servers"], so_name
                # KEDA reads what the projector does: SASL/SCRAM-SHA-512, TLS where SASL_SSL
                protocol = endpoints["kafka-security-protocol"]
                assert meta["sasl"] == "scram_sha512", so_name
                assert meta.get("tls", "disable") == (
                    "enable" if protocol == "SASL_SSL" else "disable"
                ), so_name
                assert meta.get("offsetResetPolicy") == "earliest", "the projectors' reset"
                assert int(meta["lagThreshold"]) > 0
                auth = auths[trigger["authenticationRef"]["name"]]["spec"]
                params = {e["parameter"]: env[e["name"]] for e in auth.get("env", [])}
                params |= {
                    r["parameter"]: f"<secret:{r['key']}>" for r in auth.get("secretTargetRef", [])
                }
                user = params["username"]
                assert user == env["PARLEY_KAFKA_USERNAME"], so_name
                assert params["password"] == env["PARLEY_KAFKA_PASSWORD"], so_name
                assert params["password"] == f"<secret:kafka-password-{user}>", so_name
                seen = {(g.resource, g.name) for g in grants[user] if g.pattern == "literal"}
                assert ("group", meta["consumerGroup"]) in seen, f"{user} may not see its group"
                assert ("topic", meta["topic"]) in seen, f"{user} may not see {meta['topic']}"
            else:
                pytest.fail(f"{so_name}: unexpected trigger {trigger['type']}")
        if topics:
            projection = projection_of(module, env["PROJECTOR_NAME"])
            assert topics == set(projection.topics), f"{so_name}: watches {sorted(topics)}"
    if by_kind(objects, "ScaledObject"):
        assert kinds == {"kafka", "prometheus"}, kinds


@pytest.mark.parametrize("name", ["base", "dev", "prod"])
def test_every_database_a_service_uses_is_migrated_by_a_job(rendered: Render, name: str) -> None:
    objects = rendered(name)

    def dsn_keys(kind: str) -> set[str]:
        return {
            ref["secretKeyRef"]["key"]
            for o in objects
            if o["kind"] == kind
            for c in o["spec"]["template"]["spec"]["containers"]
            for item in c.get("env", [])
            if "secretKeyRef" in (ref := item.get("valueFrom", {}))
            and ref["secretKeyRef"]["key"].endswith("-postgres-dsn")
        }

    unmigrated = dsn_keys("Deployment") - dsn_keys("Job")
    assert not unmigrated, f"no migrate Job reads {sorted(unmigrated)}"


@pytest.mark.parametrize("name", ["base", "dev", "prod"])
def test_network_policies_deny_by_default_and_cover_every_workload(
    rendered: Render, name: str
) -> None:
    objects = rendered(name)
    policies = by_kind(objects, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    selected = {
        p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        for p in policies.values()
    }
    for workload, _ in pod_specs(objects):
        assert workload in selected, f"{workload} has no NetworkPolicy of its own"


@pytest.mark.parametrize("name", ["base", "dev", "prod"])
def test_jobs_run_the_shared_entry_points(rendered: Render, name: str) -> None:
    modules = {
        python_module(c.get("command"))
        for _, pod in pod_specs(rendered(name))
        for c in pod["containers"]
    }
    assert {"parley_eventstore.migrate", "parley_messaging.topics"} <= modules


# -- auth-api's internal port and the credentials for it (issue 19) ---------------------------

INTERNAL_PORT = 8112


def internal_credentials(objects: list[dict[str, Any]]) -> dict[str, str]:
    """workload -> the Secret key its `<PREFIX>_INTERNAL_TOKEN` comes from."""
    held = {}
    for workload, pod in pod_specs(objects):
        for container in pod["containers"]:
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if item["name"].endswith("_INTERNAL_TOKEN") and ref:
                    held[workload] = ref["key"]
    return held


def allows(rules: list[dict[str, Any]], port: int) -> list[dict[str, Any]]:
    return [r for r in rules if any(p.get("port") == port for p in r.get("ports", []))]


@pytest.mark.parametrize("name", ["base", "dev", "prod"])
def test_each_internal_caller_holds_its_own_credential_with_the_standard_scopes(
    rendered: Render, name: str
) -> None:
    from parley_auth.callers import STANDARD_CALLERS, Callers

    objects = rendered(name)
    held = internal_credentials(objects)
    assert held == {c: f"internal-credential-{c}" for c in STANDARD_CALLERS}
    [auth] = [
        c for _, pod in pod_specs(objects) for c in pod["containers"] if c["name"] == "auth-api"
    ]
    env = container_env(objects, auth)
    assert "AUTH_INTERNAL_TOKEN" not in env  # the retired shared token
    table = env["AUTH_INTERNAL_CALLERS"]
    for caller in STANDARD_CALLERS:  # each hash from the caller's own Secret key
        var = "INTERNAL_SHA256_" + caller.upper().replace("-", "_")
        assert env[var] == f"<secret:internal-sha256-{caller}>"
        table = table.replace(f"$({var})", "0" * 64)
    callers = Callers.from_json(table)
    scopes = {n: c.scopes for n, c in callers.by_name.items()}
    assert scopes == {n: frozenset(s) for n, s in STANDARD_CALLERS.items()}
    assert int(env["AUTH_INTERNAL_PORT"]) == INTERNAL_PORT
    # every caller reaches the internal port, never the public one, for keys and codes
    for _, pod in pod_specs(objects):
        for container in pod["containers"]:
            for key, value in container_env(objects, container).items():
                if key.endswith(("_KEYS_URL", "NOTIFICATIONS_AUTH_URL")):
                    assert value == f"http://auth-api:{INTERNAL_PORT}", (key, value)


@pytest.mark.parametrize("name", ["base", "dev", "prod"])
def test_only_credential_holders_reach_auth_apis_internal_port(rendered: Render, name: str) -> None:
    objects = rendered(name)
    holders = set(internal_credentials(objects))
    policies = by_kind(objects, "NetworkPolicy")
    inbound = allows(policies["auth-api"]["spec"]["ingress"], INTERNAL_PORT)
    peers = [peer for rule in inbound for peer in rule["from"]]
    assert all(set(peer) == {"podSelector"} for peer in peers), "pods of this namespace only"
    allowed = {peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in peers}
    assert allowed == holders
    # and each holder may go there (egress), nothing else in Parley may
    for policy_name, policy in policies.items():
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        workload = selector.get("app.kubernetes.io/name")
        outbound = [
            peer
            for rule in allows(policy["spec"].get("egress", []), INTERNAL_PORT)
            for peer in rule["to"]
            if peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
            == "auth-api"
        ]
        assert bool(outbound) == (workload in holders), policy_name
    service = by_kind(objects, "Service")["auth-api"]["spec"]["ports"]
    assert {"name": "internal", "port": INTERNAL_PORT, "targetPort": "internal"} in service
