"""deploy/prometheus/alerts.yml: Parley's alert rules, one source for both Prometheus setups
(docker compose's loads the file, a cluster's the PrometheusRule generated from it in
deploy/k8s/base). Every expression queries series the code exports, by labels those series
carry; the rules cover the pipeline's known failure signals; and promtool, when it can be had
(deploy_tools.promtool), checks the configuration with the rules and runs their unit tests
(alerts_test.yml), which every alert must have."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
import yaml
from deploy_tools import ToolError, promtool
from deploy_workspace import ROOT, exported_series

sys.path.insert(0, str(ROOT / "deploy" / "prometheus"))
from prometheusrule import ALERTS, TARGET, render

Render = Callable[[str], list[dict[str, Any]]]
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERT_TESTS = PROMETHEUS / "alerts_test.yml"
# labels a scrape adds rather than the code: compose's job/instance, a pod scrape's
# namespace/pod (the rules aggregate them away by name)
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod"})
SEVERITIES = {"warning", "critical"}
# what the rules must watch: signal -> a series its expression must read
REQUIRED = {
    "outbox age": "parley_outbox_oldest_pending_seconds",
    "outbox backlog": "parley_outbox_pending_rows",
    "consumer-group lag": "parley_consumer_group_lag",
    "projector DLQ": "parley_readmodel_dlq_total",
    "saga failures": "parley_saga_transitions_total",
    "saga compensations": "parley_saga_compensations_total",
    "HTTP 5xx": "parley_http_request_seconds_count",
    "realtime push lag": "parley_realtime_push_lag_seconds_bucket",
    "slow disconnects": "parley_realtime_slow_disconnects_total",
}
SELECTOR = re.compile(r"\b(parley_\w+)\s*\{([^}]*)\}")
MATCHER = re.compile(r"(\w+)\s*(=~|!~|!=|=)\s*\"((?:[^\"\\]|\\.)*)\"")
GROUPING = re.compile(r"\b(by|without)\s*\(([^)]*)\)")


def alerts() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(ALERTS.read_text())
    return loaded


def rules() -> list[dict[str, Any]]:
    return [rule for group in alerts()["groups"] for rule in group["rules"]]


@cache
def source_text() -> str:
    """All of libs/ and services/ source, to find the label values the code writes."""
    files = [*ROOT.glob("libs/*/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]
    return "\n".join(path.read_text() for path in files)


def test_compose_prometheus_loads_the_rules(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    rule_files = config.get("rule_files", [])
    assert ALERTS.name in rule_files, f"prometheus.yml does not load {ALERTS.name}"
    mounts = {
        v.split(":")[1]: v.split(":")[0] for v in compose["services"]["prometheus"]["volumes"]
    }
    config_dir = "/etc/prometheus"
    assert mounts.get(f"{config_dir}/prometheus.yml") == "./deploy/prometheus/prometheus.yml"
    for rule_file in rule_files:
        # relative to the configuration file, in the container as here
        assert not rule_file.startswith("/"), f"{rule_file}: give it relative to prometheus.yml"
        assert (PROMETHEUS / rule_file).is_file(), f"no deploy/prometheus/{rule_file}"
        mounted = mounts.get(f"{config_dir}/{rule_file}")
        assert mounted == f"./deploy/prometheus/{rule_file}", f"{rule_file} is not mounted"


def test_every_alert_is_named_labelled_and_explained() -> None:
    names = [rule.get("alert") for rule in rules()]
    assert all(names), "recording rules belong elsewhere: every rule here is an alert"
    assert len(names) == len(set(names)), f"alert names repeat: {sorted(names)}"
    for rule in rules():
        name = rule["alert"]
        assert name.startswith("Parley"), f"{name}: Parley's alerts are named Parley*"
        assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity"
        annotations = rule.get("annotations", {})
        assert {"summary", "description"} <= annotations.keys(), f"{name}: annotations"


def test_rules_query_series_the_code_exports() -> None:
    """Series names, the labels matched and grouped on, and the literal values matched are
    the code's: a renamed metric or label fails here rather than leaving an alert that can
    never fire."""
    series = exported_series()
    problems = []
    for rule in rules():
        name, expr = rule["alert"], rule["expr"]
        used = set(re.findall(r"\bparley_\w+", expr))
        if unknown := sorted(used - series.keys()):
            problems.append(f"{name}: no code exports {unknown}")
            continue
        labels = TARGET_LABELS.union(*(series[metric] for metric in used))
        for metric, matchers in SELECTOR.findall(expr):
            for label, op, value in MATCHER.findall(matchers):
                if label not in series[metric] | TARGET_LABELS:
                    problems.append(f"{name}: {metric} has no label {label}")
                elif op == "=" and f'"{value}"' not in source_text():
                    problems.append(f"{name}: the code never writes {label}={value!r}")
        for _, grouped in GROUPING.findall(expr):
            for label in filter(None, (part.strip() for part in grouped.split(","))):
                if label not in labels:
                    problems.append(f"{name}: groups on {label}, a label none of {used} has")
    assert not problems, "\n".join(problems)


def test_the_rules_watch_parleys_failure_signals() -> None:
    used = {metric for rule in rules() for metric in re.findall(r"\bparley_\w+", rule["expr"])}
    missing = {signal: metric for signal, metric in REQUIRED.items() if metric not in used}
    assert not missing, f"no alert on {missing}"


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    cases = [
        case
        for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    fired = {case["alertname"] for case in cases if case.get("exp_alerts")}
    untested = sorted({rule["alert"] for rule in rules()} - fired)
    assert not untested, f"{ALERT_TESTS.name} never fires {untested}"


def test_the_kubernetes_rules_are_generated_from_alerts_yml() -> None:
    assert TARGET.read_text() == render(ALERTS.read_text()), (
        f"{TARGET.relative_to(ROOT)} is out of date: python deploy/prometheus/prometheusrule.py"
    )


@pytest.mark.parametrize("name", ["base", "dev", "prod"])
def test_the_cluster_loads_the_same_rules(rendered: Render, name: str) -> None:
    found = [o for o in rendered(name) if o["kind"] == "PrometheusRule"]
    assert len(found) == 1, f"expected one PrometheusRule, found {len(found)}"
    assert found[0]["spec"] == alerts(), "the PrometheusRule's rules differ from alerts.yml"


@pytest.mark.parametrize(
    "args",
    [["check", "config", "prometheus.yml"], ["test", "rules", ALERT_TESTS.name]],
    ids=["check-config-and-rules", "unit-tests"],
)
def test_promtool(args: list[str]) -> None:
    """`promtool check config` parses prometheus.yml and every rule file it loads (PromQL
    included); `promtool test rules` runs alerts_test.yml."""
    try:
        tool = promtool()
    except ToolError as error:
        pytest.skip(f"no promtool: {error}")
    done = subprocess.run(
        [str(tool), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"
