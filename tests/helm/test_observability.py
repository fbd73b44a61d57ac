"""The Grafana dashboard and the PrometheusRule shipped in the chart query only metrics the
gateway exports, read from a running gateway's /metrics (not from a list kept here)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway import create_app
from gateway.config import settings_from_mapping
from gateway.snap.keys import private_key_pem, public_key_pem

from ..support import Keys, running_server, start_redis
from .chart import CHART, MINIMAL, REDIS, Rendered, merged, render

DASHBOARD = CHART / "dashboards" / "doku-gateway.json"
SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "unknown": ("",),
}
ALERTS = {
    "DokuGatewayInquiryErrors",
    "DokuGatewayInquiryLatencyHigh",
    "DokuGatewayResolverDown",
    "DokuGatewayRedisDown",
    "DokuGatewayJournalBacklogGrowing",
    "DokuGatewayDeadLetter",
    "DokuGatewaySignatureFailures",
}
PANELS = {
    "Inquiries by result",
    "Inquiry latency",
    "Cache hit ratio",
    "Signature and token failures",
    "Refusals by response code",
    "Resolver latency",
    "Resolvers up",
    "Redis",
    "Payment notifications",
    "Journal backlog",
    "Oldest undelivered payment",
    "Dead letters",
}


@pytest.fixture(scope="module")
def exported(keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every series name a running gateway's /metrics declares (families with no samples yet
    included), expanded to the names PromQL uses (``_total``, ``_bucket``...). The gateway runs
    on a real Redis, as the dashboard's deployments do: some series exist only with Redis."""
    journal = tmp_path_factory.mktemp("journal")
    redis = start_redis()
    data = {
        "doku": {
            "client_id": keys.client_id,
            "client_secret": keys.client_secret,
            "public_key": public_key_pem(keys.doku.public_key()).decode(),
        },
        "merchant": {"private_key": private_key_pem(keys.merchant).decode()},
        "resolvers": [{"name": "demo", "use": "demo", "default": True}],
        "cache": {"url": redis.url},
    }
    settings = settings_from_mapping(data, {"DOKU_GATEWAY_PAYMENT_JOURNAL_DIR": str(journal)})
    try:
        with running_server(create_app(settings)) as url:
            text = httpx.get(f"{url}/metrics", timeout=10).raise_for_status().text
    finally:
        redis.stop()
    names = {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in SERIES_SUFFIXES[family.type]
    }
    assert "doku_gateway_inquiries_total" in names
    return names


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bdoku_gateway_[a-zA-Z0-9_]+", expr))


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panels(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in node.get("panels", []):
        yield panel
        yield from panels(panel)


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every templating variable."""
    queries = []
    for panel in panels(dashboard()):
        for target in panel.get("targets", []):
            queries.append((f"panel {panel['title']!r}", target["expr"]))
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries.append((f"variable {variable['name']}", query.get("query", query)))
    return queries


def test_dashboard_parses_and_has_the_panels() -> None:
    board = dashboard()
    assert board["uid"] == "doku-gateway" and board["title"]
    titles = {panel["title"] for panel in panels(board)}
    assert titles >= PANELS, PANELS - titles
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))
    datasources = {
        json.dumps(target["datasource"])
        for panel in panels(board)
        for target in panel.get("targets", [])
    }
    assert datasources == {json.dumps({"type": "prometheus", "uid": "${datasource}"})}


def test_every_dashboard_query_names_an_exported_metric(exported: set[str]) -> None:
    unknown = {}
    for where, expr in dashboard_queries():
        names = metric_names(expr)
        assert names, f"{where} queries no doku_gateway_ metric: {expr}"
        if names - exported:
            unknown[where] = sorted(names - exported)
    assert not unknown, f"metrics the gateway does not export: {unknown}"


def test_dashboard_configmap_for_the_grafana_sidecar() -> None:
    rendered = render(merged(MINIMAL, {"metrics": {"grafanaDashboard": {"enabled": True}}}))
    (configmap,) = [doc for doc in rendered.all("ConfigMap") if "config.toml" not in doc["data"]]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["doku-gateway.json"]) == dashboard()
    assert "grafana_dashboard" not in render(MINIMAL).one("ConfigMap")["metadata"]["labels"]


def rules(rendered: Rendered) -> dict[str, dict[str, Any]]:
    groups = rendered.one("PrometheusRule")["spec"]["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_prometheus_rule_alerts(exported: set[str]) -> None:
    values = merged(
        MINIMAL,
        REDIS,
        {
            "metrics": {
                "prometheusRule": {
                    "enabled": True,
                    "runbookUrl": "https://git.example.com/doku-gateway/README.md",
                    "alertLabels": {"team": "payments"},
                    "p99LatencySeconds": 1.5,
                }
            }
        },
    )
    alerts = rules(render(values))
    assert set(alerts) == ALERTS
    unknown = {}
    for name, rule in alerts.items():
        names = metric_names(rule["expr"])
        assert names, f"{name} queries no doku_gateway_ metric"
        if names - exported:
            unknown[name] = sorted(names - exported)
        assert 'namespace="payments", job="gw-doku-gateway"' in rule["expr"], name
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["labels"]["team"] == "payments"
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        url = f"https://git.example.com/doku-gateway/README.md#{name.lower()}"
        assert rule["annotations"]["runbook_url"] == url
    assert alerts["DokuGatewayInquiryLatencyHigh"]["expr"].endswith("> 1.5")
    assert not unknown, f"metrics the gateway does not export: {unknown}"


def test_alerts_follow_the_release() -> None:
    """No RedisDown alert without Redis (memory:// reports redis_up 0 forever); alerts can be
    left out by name."""
    enabled = {"metrics": {"prometheusRule": {"enabled": True}}}
    assert set(rules(render(merged(MINIMAL, enabled)))) == ALERTS - {"DokuGatewayRedisDown"}
    disabled = merged(
        MINIMAL,
        REDIS,
        enabled,
        {"metrics": {"prometheusRule": {"disabled": ["DokuGatewayDeadLetter"]}}},
    )
    assert set(rules(render(disabled))) == ALERTS - {"DokuGatewayDeadLetter"}


def test_every_alert_has_a_runbook_in_the_chart_readme() -> None:
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^### (DokuGateway\w+)\n\n(.+?)(?=^#)", readme, re.M | re.S))
    assert set(sections) == ALERTS
    for name, text in sections.items():
        assert "**Summary:**" in text and "**Runbook:**" in text, name
        assert len(text.split()) > 60, f"{name}: the runbook says too little"
