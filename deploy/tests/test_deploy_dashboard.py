"""deploy/grafana: the dashboard shows the main Parley metrics, by names the code exports."""

from __future__ import annotations

import json
import re
from typing import Any

from deploy_workspace import ROOT, exported_metric_names

DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "parley.json"
REQUIRED = {
    "HTTP latency": "parley_http_request_seconds",
    "outbox backlog": "parley_outbox_backlog_rows",
    "relay lag": "parley_relay_lag_seconds",
    "consumer lag": "parley_readmodel_consumer_lag",
    "DLQ counts": "parley_readmodel_dlq_total",
}


def expressions(panels: list[dict[str, Any]]) -> list[str]:
    found = []
    for panel in panels:
        found += [t["expr"] for t in panel.get("targets", [])]
        found += expressions(panel.get("panels", []))
    return found


def test_dashboard_queries_only_metrics_the_code_exports() -> None:
    used = {
        re.sub(r"_(bucket|count|sum)$", "", name)
        for expr in expressions(json.loads(DASHBOARD.read_text())["panels"])
        for name in re.findall(r"\bparley_\w+", expr)
    }
    exported = exported_metric_names()
    assert used, "the dashboard queries nothing"
    assert not used - exported, f"not exported by any service: {sorted(used - exported)}"
    for what, metric in REQUIRED.items():
        assert metric in used, f"the dashboard must show {what} ({metric})"
