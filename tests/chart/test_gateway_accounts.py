"""The operator reads every gateway pod's /health/tokens: headless Service, env, NetworkPolicy."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.chart.conftest import Manifest, container, env_of, find, one, render

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
    # No proxy behind a headless name: the URL's port must be the container's own.
    ports = {p["name"]: p["containerPort"] for p in container(gateway)["ports"]}
    assert url.port == ports["http"]
    assert [p["port"] for p in headless["spec"]["ports"]] == [ports["http"]]
    # The gateway's ServiceMonitor selects by component: the headless Service is not scraped twice.
    assert headless["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway-replicas"


def test_the_gateway_network_policy_admits_the_operator_pods() -> None:
    docs = render(sets=NETPOL)
    sources = one(docs, "NetworkPolicy")["spec"]["ingress"][0]["from"]
    operator_labels = one(docs, "Deployment", "-operator")["spec"]["template"]["metadata"]["labels"]
    assert any(
        s.get("podSelector", {}).get("matchLabels", {}).items() <= operator_labels.items()
        and s["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "operator"
        for s in sources
    )
    off = one(render(sets=[*NETPOL, *OFF]), "NetworkPolicy")["spec"]["ingress"][0]["from"]
    assert len(off) == len(sources) - 1


def test_turned_off_there_is_no_setting_and_no_headless_service() -> None:
    docs = render(sets=OFF)
    assert _values(env_of(container(one(docs, "Deployment", "-operator")))) == {}
    assert find(docs, "Service", "-replicas") == []
