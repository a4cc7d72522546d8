"""deploy/k8s/base/prometheus-rules.yaml from deploy/prometheus/alerts.yml: the same rule groups
as a Prometheus Operator PrometheusRule, so docker compose's Prometheus and a cluster's load one
set of rules.

    python deploy/prometheus/prometheusrule.py           # rewrite the PrometheusRule
    python deploy/prometheus/prometheusrule.py --check   # exit 1 if it is out of date

A PrometheusRule's `spec` is a rules file's content (`groups: [...]`), so the file is
alerts.yml's text indented under `spec:`, its comments kept; deploy/tests fails while the two
differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALERTS = HERE / "alerts.yml"
TARGET = HERE.parents[1] / "deploy" / "k8s" / "base" / "prometheus-rules.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by deploy/prometheus/prometheusrule.py: edit that
# file and run `python deploy/prometheus/prometheusrule.py` (deploy/tests fails while they differ).
#
# Parley's alert rules for a cluster whose Prometheus is run by the Prometheus Operator (e.g.
# kube-prometheus-stack): it loads the PrometheusRule objects its `ruleSelector` and
# `ruleNamespaceSelector` match, so give this one the label yours selects on from an overlay
# (kube-prometheus-stack's default is `release: <its Helm release>`). Applying it needs the
# operator's CRDs; a cluster without them drops it in its overlay (a `$patch: delete`).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: parley-alerts
  labels: {app.kubernetes.io/name: parley-alerts, app.kubernetes.io/component: monitoring}
spec:
"""


def render(alerts: str) -> str:
    """The PrometheusRule for the rules file `alerts` (its own header comment left out: it
    describes that file)."""
    lines = alerts.splitlines()
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)
    body = "".join(f"  {line}\n" if line.strip() else "\n" for line in lines)
    return HEADER + body


def main(argv: list[str]) -> int:
    wanted = render(ALERTS.read_text())
    if argv[1:] == ["--check"]:
        if TARGET.read_text() != wanted:
            print(f"{TARGET} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
