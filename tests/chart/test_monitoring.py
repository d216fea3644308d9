"""Monitoring objects: ServiceMonitors that match the real Services, a PrometheusRule and a
dashboard whose every expression parses as PromQL and names series the code really exports,
and the alert webhook Secret wiring. The monitoring.coreos.com CRDs are not in
kubernetes-validate, so the structure is checked here; promtool evaluates the rules in
test_alert_rules.py."""

from __future__ import annotations

import json
import re
from typing import Any

import promql_parser
import pytest
from prometheus_client.metrics import MetricWrapperBase

from llmhub_gateway.metrics import Metrics
from llmhub_operator import metrics as operator_metrics
from tests.chart.conftest import Manifest, container, find, one, render

ON = (
    "monitoring.serviceMonitor.enabled=true",
    "monitoring.prometheusRule.enabled=true",
    "monitoring.dashboard.enabled=true",
)
# Labels Prometheus adds to every scraped series (target labels).
TARGET_LABELS = {"namespace", "pod", "service", "job", "instance", "container", "endpoint"}
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d))+$")


def exported() -> dict[str, set[str]]:
    """Series name → label names, from the operator's and the gateway's real collectors."""
    collectors: list[Any] = [
        c for c in vars(operator_metrics).values() if hasattr(c, "_labelnames")
    ]
    gateway = Metrics()
    collectors += [c for c in vars(gateway).values() if hasattr(c, "_labelnames")]
    series: dict[str, set[str]] = {}
    for collector in collectors:
        assert isinstance(collector, MetricWrapperBase)
        labels = set(collector._labelnames)
        (family,) = collector.describe()
        suffixes = {
            "counter": ["_total"],
            "gauge": [""],
            "histogram": ["_bucket", "_count", "_sum"],
        }[family.type]
        for suffix in suffixes:
            extra = {"le"} if suffix == "_bucket" else set()
            series[family.name + suffix] = labels | extra
    return series


SERIES = exported()


def selectors(node: Any) -> list[Any]:
    """Every vector selector in a parsed expression."""
    if type(node).__name__ == "VectorSelector":
        return [node]
    found = []
    for attr in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None:
            found += selectors(child)
    for arg in getattr(node, "args", None) or []:
        found += selectors(arg)
    return found


def check_expr(expr: str) -> set[str]:
    """Parse ``expr`` as PromQL; every series it reads exists with the labels it matches on."""
    parsed = promql_parser.parse(expr)
    names = set()
    for selector in selectors(parsed):
        assert selector.name in SERIES, f"{selector.name} is not exported ({expr})"
        for matcher in selector.matchers.matchers:
            known = SERIES[selector.name] | TARGET_LABELS
            assert matcher.name in known, f"{selector.name} has no label {matcher.name}"
        names.add(selector.name)
    return names


def test_off_by_default() -> None:
    kinds = {d["kind"] for d in render()}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}
    assert not [
        d for d in find(render(), "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")
    ]


def test_the_expression_checker_catches_typos_and_unknown_labels() -> None:
    with pytest.raises(AssertionError, match="not exported"):
        check_expr("llmhub_operator_token_day_remaining < 3")
    with pytest.raises(AssertionError, match="has no label"):
        check_expr('llmhub_operator_syncs_total{provider="x"}')
    with pytest.raises(ValueError):  # noqa: PT011 (the parser's only error type)
        check_expr("sum(rate(llmhub_operator_syncs_total[5m])")


def test_service_monitors_select_the_metrics_services_by_their_port_names() -> None:
    docs = render(sets=ON)
    monitors = find(docs, "ServiceMonitor")
    assert len(monitors) == 2
    services = find(docs, "Service")
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        spec = monitor["spec"]
        assert spec["namespaceSelector"] == {"matchNames": ["hub"]}
        wanted = spec["selector"]["matchLabels"]
        (service,) = [s for s in services if wanted.items() <= s["metadata"]["labels"].items()]
        ports = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in spec["endpoints"]:
            assert endpoint["port"] in ports
            assert endpoint["path"] == "/metrics"
            assert DURATION.match(endpoint["interval"])
            assert DURATION.match(endpoint["scrapeTimeout"])
    operator = one(docs, "ServiceMonitor", "-operator")
    assert operator["spec"]["endpoints"][0]["honorLabels"] is True  # its own namespace label


def test_prometheus_rule_alerts_on_real_series() -> None:
    rule = one(render(sets=(*ON, "monitoring.prometheusRule.warnBeforeDays=5")), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts: dict[str, Manifest] = {}
    for group in rule["spec"]["groups"]:
        assert set(group) == {"name", "rules"}
        for r in group["rules"]:
            assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}
            assert r["labels"]["severity"] in {"warning", "critical"}
            assert r["annotations"]["summary"]
            if "for" in r:
                assert DURATION.match(r["for"])
            alerts[r["alert"]] = r
    assert set(alerts) == {
        "LLMHubTokenExpiringSoon",
        "LLMHubTokenExpired",
        "LLMHubSyncFailing",
        "LLMHubGatewayRolloutFailing",
        "LLMHubGatewayProviderErrors",
        "LLMHubSubscriptionRateLimited",
    }
    used = {name: check_expr(r["expr"]) for name, r in alerts.items()}
    assert used["LLMHubTokenExpiringSoon"] == {"llmhub_operator_token_expiry_timestamp_seconds"}
    assert "<= 432000" in alerts["LLMHubTokenExpiringSoon"]["expr"]  # 5 days
    assert used["LLMHubSyncFailing"] == {
        "llmhub_operator_last_sync_success_timestamp_seconds",
        "llmhub_operator_sync_failing_since_timestamp_seconds",
        "llmhub_operator_refresh_interval_seconds",
        "llmhub_operator_leader",
    }
    assert "3 *" in alerts["LLMHubSyncFailing"]["expr"]
    assert used["LLMHubGatewayRolloutFailing"] == {
        "llmhub_operator_rollout_failing",
        "llmhub_operator_leader",
    }
    assert 'outcome="provider_rate_limited"' in alerts["LLMHubSubscriptionRateLimited"]["expr"]
    assert used["LLMHubSubscriptionRateLimited"] == {
        "llm_mcp_hub_gateway_subscription_limited",  # the CLI's reported state, while refusing
        "llmhub_gateway_provider_latency_seconds_count",  # the vendor's refusals (Gemini)
    }
    assert alerts["LLMHubTokenExpired"]["labels"]["severity"] == "critical"


def test_dashboard_panels_query_real_series() -> None:
    docs = render(sets=ON)
    (config_map,) = [
        d for d in find(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["llm-mcp-hub.json"])
    used: set[str] = set()
    titles = []
    for panel in dashboard["panels"]:
        titles.append(panel["title"])
        for target in panel["targets"]:
            expr = target["expr"].replace("$namespace", ".*")
            used |= check_expr(expr)
    assert {
        "llmhub_operator_token_days_remaining",
        "llmhub_operator_syncs_total",
        "llmhub_gateway_requests_total",
        "llmhub_gateway_provider_latency_seconds_bucket",
        "llmhub_gateway_provider_latency_seconds_count",
        "llm_mcp_hub_gateway_subscription_utilization",
        "llm_mcp_hub_gateway_subscription_refusals_total",
        "llm_mcp_hub_gateway_subscription_limited",
    } <= used
    assert "Token days left" in titles


def test_the_webhook_url_comes_from_a_mounted_secret() -> None:
    docs = render(
        sets=(
            "operator.alerts.webhook.existingSecret=alert-hook",
            "operator.alerts.webhook.existingSecretKey=slack-url",
            "operator.alerts.webhook.format=slack",
            "operator.alerts.clusterName=prod-west",
        )
    )
    deployment = one(docs, "Deployment", "-operator")
    env = {e["name"]: e.get("value") for e in container(deployment)["env"]}
    assert env["LLMHUB_ALERT_WEBHOOK_URL_FILE"] == "/etc/llmhub/alert-webhook/slack-url"
    assert env["LLMHUB_ALERT_WEBHOOK_FORMAT"] == "slack"
    assert env["LLMHUB_CLUSTER_NAME"] == "prod-west"
    assert "LLMHUB_ALERT_WEBHOOK_URL" not in env  # never the URL itself in the pod spec
    mounts = {m["name"]: m for m in container(deployment)["volumeMounts"]}
    assert mounts["alert-webhook"]["mountPath"] == "/etc/llmhub/alert-webhook"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["alert-webhook"]["secret"] == {
        "secretName": "alert-hook",
        "items": [{"key": "slack-url", "path": "slack-url"}],
    }
    plain = one(render(), "Deployment", "-operator")
    assert "LLMHUB_ALERT_WEBHOOK_URL_FILE" not in {e["name"] for e in container(plain)["env"]}
