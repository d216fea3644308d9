"""The operator reads every gateway pod's /health/tokens on the admin port: headless Service, env,
NetworkPolicy; Prometheus scrapes /metrics there; the callers' Service has neither."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.chart.conftest import CHART, Manifest, container, env_of, find, one, render, run_helm

NETPOL = ["gateway.networkPolicy.enabled=true"]
OFF = ["operator.gatewayAccounts.enabled=false"]


def _values(env: dict[str, Manifest]) -> dict[str, str]:
    return {k: v["value"] for k, v in env.items() if k.startswith("LLMHUB_GATEWAY_")}


def test_the_operator_reads_every_gateway_pod_through_a_headless_service(
    default_docs: list[Manifest],
) -> None:
    gateway = one(default_docs, "Deployment", "-gateway")
    operator_env = _values(env_of(container(one(default_docs, "Deployment", "-operator"))))
    url = urlsplit(operator_env["LLMHUB_GATEWAY_URL"])
    assert operator_env["LLMHUB_GATEWAY_DEPLOYMENT"] == gateway["metadata"]["name"]
    assert (
        operator_env["LLMHUB_GATEWAY_POLL_SECONDS"],
        operator_env["LLMHUB_GATEWAY_TIMEOUT_SECONDS"],
    ) == ("30", "3")
    headless = one(default_docs, "Service", "-replicas")
    assert url.hostname == f"{headless['metadata']['name']}.hub.svc.cluster.local"
    assert headless["spec"]["clusterIP"] == "None"  # one DNS record per ready pod
    pod_labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert headless["spec"]["selector"].items() <= pod_labels.items()
    # No proxy behind a headless name: the URL's port must be the container's own admin port.
    ports = {p["name"]: p["containerPort"] for p in container(gateway)["ports"]}
    assert url.port == ports["admin"] == 9090
    assert "--admin-port" in container(gateway)["args"]
    assert [(p["name"], p["port"]) for p in headless["spec"]["ports"]] == [("admin", 9090)]
    callers = one(default_docs, "Service", "-gateway")
    assert [p["targetPort"] for p in callers["spec"]["ports"]] == ["http"]
    assert headless["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway-replicas"


def _rules(docs: list[Manifest]) -> dict[str, list[Manifest]]:
    """The NetworkPolicy's sources per port name."""
    rules = one(docs, "NetworkPolicy")["spec"]["ingress"]
    return {rule["ports"][0]["port"]: rule["from"] for rule in rules}


def _is_operator(source: Manifest, operator_labels: dict[str, str]) -> bool:
    wanted = source.get("podSelector", {}).get("matchLabels", {})
    return wanted.get("app.kubernetes.io/component") == "operator" and (
        wanted.items() <= operator_labels.items()
    )


def test_the_gateway_network_policy_admits_the_operator_to_the_admin_port_only() -> None:
    docs = render(sets=NETPOL)
    rules = _rules(docs)
    operator_labels = one(docs, "Deployment", "-operator")["spec"]["template"]["metadata"]["labels"]
    assert [_is_operator(s, operator_labels) for s in rules["admin"]] == [True]
    assert not any(_is_operator(s, operator_labels) for s in rules["http"])
    # Off, and nobody else named: no admin rule at all (an empty "from" would admit everyone).
    assert set(_rules(render(sets=[*NETPOL, *OFF]))) == {"http"}


def test_prometheus_reaches_the_admin_port_through_the_named_namespaces() -> None:
    monitored = [*NETPOL, "monitoring.serviceMonitor.enabled=true"]
    done = run_helm("template", "hub", str(CHART), *(a for s in monitored for a in ("--set", s)))
    assert done.returncode != 0
    assert "set gateway.networkPolicy.adminAllowedNamespaces" in done.stderr
    prometheus = "gateway.networkPolicy.adminAllowedNamespaces[0].name=monitoring"
    rules = _rules(render(sets=[*monitored, prometheus, *OFF]))
    assert rules["admin"] == [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    assert {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}} not in rules["http"]


def test_turned_off_there_is_no_setting_and_no_headless_service() -> None:
    docs = render(sets=OFF)
    assert _values(env_of(container(one(docs, "Deployment", "-operator")))) == {}
    assert find(docs, "Service", "-replicas") == []
    # ...unless Prometheus needs it: the ServiceMonitor scrapes the admin port through it.
    monitored = render(sets=[*OFF, "monitoring.serviceMonitor.enabled=true"])
    assert one(monitored, "Service", "-replicas")["spec"]["ports"][0]["name"] == "admin"
