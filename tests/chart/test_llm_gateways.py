"""The chart for many tenants: no gateway of its own, LLMGateways served where named."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import yaml

from tests.chart.conftest import (
    CHART,
    REPO,
    ci_file,
    container,
    env_of,
    find,
    one,
    render,
    render_notes,
)

TENANTS = (
    "gateway.enabled=false",
    "operator.watchNamespaces={team-a,team-b}",
    "operator.llmGateways.namespaces={team-a,team-b}",
)


def test_without_its_gateway_the_chart_renders_no_gateway_or_redis_and_providers_roll_nothing() -> (
    None
):
    docs = render([ci_file("kind")], sets=("gateway.enabled=false",))
    assert not [d for d in docs if d["metadata"]["name"].startswith("hub-llm-mcp-hub-gateway")]
    assert not [d for d in docs if d["metadata"]["name"].endswith("-redis")]
    assert not [d for d in docs if d["kind"] == "Pod"], "the helm test needs the gateway"
    providers = find(docs, "LLMProvider")
    assert providers
    assert all(p["spec"]["gateway"] == {} for p in providers)
    env = env_of(container(one(docs, "Deployment", "-operator")))
    assert "LLMHUB_GATEWAY_URL" not in env, "no account reads without the chart's gateway"
    assert env["LLMHUB_LLMGATEWAYS_ENABLED"]["value"] == "true"
    rules = [r for d in find(docs, "Role") + find(docs, "ClusterRole") for r in d["rules"]]
    assert not [r for r in rules if r.get("resourceNames") and "deployments" in r["resources"]]


def test_two_tenants_get_a_gateway_owning_role_each_and_notes_name_llm_gateways(
    tmp_path: Path,
) -> None:
    docs = render(sets=TENANTS)
    roles = [r for r in find(docs, "Role") if r["metadata"]["name"].endswith("-operator-gateways")]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all("secrets" not in str(r["rules"]) for r in roles)
    env = env_of(container(one(docs, "Deployment", "-operator")))
    image = env["LLMHUB_LLMGATEWAYS_IMAGE"]["value"]
    assert image.startswith("ghcr.io/llm-mcp-hub/llm-mcp-hub-gateway:")
    notes = render_notes(tmp_path, *TENANTS)
    assert "No gateway of this release (gateway.enabled=false)" in notes
    assert "svc.cluster.local:8000" not in notes


def test_the_readme_examples_match_the_crd_schema() -> None:
    crd = yaml.safe_load((REPO / "crds" / "llm-mcp-hub.io_llmgateways.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    readme = (CHART / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    gateways = [
        d for b in blocks for d in yaml.safe_load_all(b) if d and d.get("kind") == "LLMGateway"
    ]
    assert gateways
    for gateway in gateways:
        jsonschema.validate(gateway, schema)
