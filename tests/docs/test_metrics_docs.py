"""The metrics the documents and monitoring files name are the ones the service exposes, and
the dashboard is valid JSON. No database, no network."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import service.metric_defs  # noqa: F401 - registers the service's metrics

ROOT = Path(__file__).resolve().parents[2]
# Names as PromQL sees them: a counter's _total, a histogram's _bucket/_count/_sum.
NAME = re.compile(r"\bwme_[a-z_]+")


def exposed() -> set[str]:
    names = set()
    # From each family's type, not its samples: a labelled series has none until first used.
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    for metric in REGISTRY.collect():
        names.add(metric.name)
        names.update(metric.name + suffix for suffix in suffixes.get(metric.type, ()))
    return {n for n in names if n.startswith("wme_")}


def named_in(text: str) -> set[str]:
    return set(NAME.findall(text))


def test_the_operations_metric_table_lists_every_metric_and_only_those():
    section = (ROOT / "docs/operations.md").read_text(encoding="utf-8")
    section = section.split("## Metrics and alerts", 1)[1].split("\n## ", 1)[0]
    names = named_in(section)
    assert names and names <= exposed(), names - exposed()
    families = {m.name for m in REGISTRY.collect() if m.name.startswith("wme_")}
    documented = {n.removesuffix("_total") for n in names}
    assert families <= documented, families - documented


def test_the_alert_rules_name_real_metrics():
    rules = yaml.safe_load((ROOT / "monitoring/alerts.yml").read_text(encoding="utf-8"))
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert {"AuditRowsLost", "DatabaseErrorsRising", "QuotaRefusalsSpiking"} <= {
        rule["alert"] for group in rules["groups"] for rule in group["rules"]
    }
    for expr in exprs:
        assert named_in(expr) and named_in(expr) <= exposed(), expr


def test_the_grafana_dashboard_is_json_over_real_metrics():
    dashboard = json.loads((ROOT / "monitoring/grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 6
    for expr in exprs:
        assert named_in(expr) and named_in(expr) <= exposed(), expr
